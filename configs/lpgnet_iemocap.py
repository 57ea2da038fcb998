"""LPGNet on the real IEMOCAP release, as the paper trains it (papers/lpgnet.md, Sections 4.1-4.3).

4 classes (excited merged into happy; 5531 utterances), Session 5 held out (1241 test utterances),
validation carved from Sessions 1-4 by dialogue; utterance features: BERT-base fine-tuned on the
utterance task ([CLS]) and emotion2vec's utterance vectors; Adam 3e-4 with L2 1e-5, batch 32
dialogues, hidden 768, dropout 0.1, tau 1, 150 epochs, 10 seeds (trained together).

emotion2vec vectors are imported, one ``<utterance id>.npy`` per utterance, from
``utterance_features.audio_dir`` (extract them with the official emotion2vec code); without them,
``--config.utterance_features.audio=bilstm`` learns audio vectors from MFCCs here.

LPGNet's layers start as PyTorch's defaults would (``model.init = "torch"``, layers/torch_init.py): the
paper's code is PyTorch 1.8.1, and with no projection before Q K^T (Eq. 3) the start sets how sharp
the attention is (PyTorch's kernels: scores about a third of Flax's). Every table on this config
(lpgnet_table2/3/6/7) inherits it; the utterance-feature extractors (ours) keep Flax's start.
"""

from mer_jax.config import base_config


def get_config():
    c = base_config("lpgnet")
    c.data.root = "data/IEMOCAP_full_release"
    c.data.label_set = "iemocap4"
    c.split.protocol = "holdout"
    c.split.test_sessions = ("Ses05",)
    c.features.max_tokens = 64  # IEMOCAP turns are short; 64 BERT tokens hold all but a few
    c.text.encoder = "bert-base-uncased"
    c.utterance_features.text = "finetuned_cls"
    c.utterance_features.audio = "emotion2vec"
    c.utterance_features.audio_dir = "data/emotion2vec_iemocap"
    c.utterance_features.extractor_epochs = 5
    c.model.init = "torch"  # PyTorch's default initialisers, as the paper's code (see above)
    c.train.optimizer = "adam"  # "L2 weight decay", as PyTorch's Adam applies it
    c.train.lr = 3e-4
    c.train.weight_decay = 1e-5
    c.train.schedule = "constant"
    c.train.clip_norm = 0.0  # the paper names no clipping
    c.train.batch_size = 32
    c.train.epochs = 150
    c.train.seeds = 10
    c.train.select_metric = "binary_f1"  # the paper's headline metrics are one-vs-all averages
    return c
