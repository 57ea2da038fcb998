"""LPGNet's linear baseline on MELD's text: a linear classifier on the same MiniLM utterance vectors that
configs/lpgnet_meld_text.py reads, each utterance alone, with its data, protocol and recipe. Beside
LPGNet, it says whether the dialogue context adds to the vectors."""

from mer_jax.config import base_config
from mer_jax.configs import lpgnet_meld_text


def get_config():
    c = base_config("linear")
    lpgnet = lpgnet_meld_text.get_config()
    c.seed = lpgnet.seed
    for section in ("data", "features", "split", "text", "utterance_features", "train"):
        c[section].update(lpgnet[section])
    c.model.modalities = lpgnet.model.modalities
    return c
