"""LPGNet on the synthetic demo corpus (`mer-jax demo` writes it): 4 classes, Session 5 held out.

Everything is learnt here: text vectors from the demo's small Transformer fine-tuned on the
utterance task (mean token state), audio vectors from the BiLSTM over MFCC trained on it, both on
the training part only. Fewer dialogues than IEMOCAP, so hidden 256, batches of 4 dialogues, 60
epochs; 5 seeds trained together. The table `lpgnet_demo` runs it beside its ablations and the
utterance-level dynamic-fusion model.
"""

from mer_jax.config import base_config
from mer_jax.configs import demo


def get_config():
    c = base_config("lpgnet")
    utterance_model = demo.get_config()
    c.data.root = utterance_model.data.root
    c.data.label_set = "iemocap4"
    c.features = utterance_model.features
    c.split = utterance_model.split
    c.text = utterance_model.text
    c.utterance_features.text = "finetuned_mean"
    c.utterance_features.audio = "bilstm"
    c.utterance_features.extractor_epochs = utterance_model.train.epochs
    c.utterance_features.extractor_lr = utterance_model.train.lr
    c.utterance_features.extractor_encoder_lr = utterance_model.train.encoder_lr
    c.utterance_features.extractor_d_model = utterance_model.model.d_model
    c.utterance_features.extractor_dropout = utterance_model.model.dropout
    c.model.hidden = 256
    c.train.optimizer = "adam"
    c.train.lr = 3e-4
    c.train.weight_decay = 1e-5
    c.train.schedule = "constant"
    c.train.clip_norm = 0.0
    c.train.batch_size = 4
    c.train.epochs = 60
    c.train.seeds = 5
    c.train.select_metric = "binary_f1"
    return c
