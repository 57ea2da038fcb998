"""The demo: the fused model on the synthetic IEMOCAP-layout corpus, Session 5 held out.

`mer-jax demo` writes the corpus to data/demo_iemocap and runs this config together with its
audio-only and text-only variants (--config.model.modalities=audio / text).
"""

from mer_jax.config import base_config

# What this config gives over 5 seeds: test (mean, std) of each variant, measured with
#   mer-jax train --config=configs/demo.py --config.model.modalities=M --config.train.seeds=5
# (docs/results.md); `mer-jax demo` trains seed 0 of each and prints this beside it, as the range to expect.
EXPECTED = {
    "audio+text": {"ua": (0.585, 0.050), "wa": (0.632, 0.035), "weighted_f1": (0.629, 0.045)},
    "audio": {"ua": (0.373, 0.047), "wa": (0.439, 0.038), "weighted_f1": (0.392, 0.052)},
    "text": {"ua": (0.352, 0.024), "wa": (0.286, 0.052), "weighted_f1": (0.240, 0.085)},
}


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
