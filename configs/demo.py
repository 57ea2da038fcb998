"""The demo: the fused model on the synthetic IEMOCAP-layout corpus, Session 5 held out.

`mer-jax demo` writes the corpus to data/demo_iemocap and runs this config together with its
audio-only and text-only variants (--config.model.modalities=audio / text).
"""

from mer_jax.config import base_config


def get_config():
    c = base_config()
    c.data.root = "data/demo_iemocap"
    c.data.label_set = "iemocap6"
    c.features.max_frames = 300
    c.features.max_tokens = 32
    c.split.protocol = "holdout"
    c.split.test_sessions = ("Ses05",)
    c.model.d_model = 128
    c.model.num_heads = 8
    c.model.dropout = 0.2
    c.text.hidden = 128
    c.text.layers = 1
    c.train.epochs = 15
    c.train.batch_size = 32
    c.train.lr = 2e-3
    c.train.encoder_lr = 1e-3  # the text encoder is trained from scratch here, not fine-tuned
    return c
