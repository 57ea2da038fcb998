"""LPGNet's linear baseline (Table 2): a linear classifier on LPGNet's own utterance features, each
utterance alone, with LPGNet's data, protocol, features, recipe and PyTorch initialisation
(configs/lpgnet_iemocap.py)."""

from mer_jax.config import base_config
from mer_jax.configs import lpgnet_iemocap


def get_config():
    c = base_config("linear")
    lpgnet = lpgnet_iemocap.get_config()
    c.seed = lpgnet.seed
    c.model.init = lpgnet.model.init
    for section in ("data", "features", "split", "text", "utterance_features", "train"):
        c[section].update(lpgnet[section])
    return c
