"""LPGNet (Frame) on the real IEMOCAP release (papers/lpgnet.md, Table 2): LPGNet over each
utterance's token states and acoustic frames, both padded or truncated to 512 positions.

The protocol and recipe are the utterance-level LPGNet's (configs/lpgnet_iemocap.py: 4 classes,
Session 5 held out, Adam 3e-4 with L2 1e-5, hidden 768, dropout 0.1, tau 1, 150 epochs, 10 seeds,
PyTorch's initialisation), with batches of 32 utterances. The paper's Table 2 names the frame model's
features: BERT (text tokens) and emotion2vec (acoustic frames); it does not say whether BERT was
fine-tuned for it. Here BERT-base is fine-tuned inside the model at 2e-5; the frames are 40 MFCCs by
default (10 ms hop, so 512 frames are 5.12 s; no checkpoint needed), and the paper's emotion2vec frames
are ``--config.audio.encoder=<emotion2vec folder> --config.audio.layer=-1``.
"""

from mer_jax.config import base_config
from mer_jax.configs import lpgnet_iemocap


def get_config():
    c = base_config("lpgnet_frame")
    utterance_level = lpgnet_iemocap.get_config()
    for section in ("data", "split", "text", "objective"):
        c[section] = utterance_level[section]
    c.train = utterance_level.train
    c.model.init = utterance_level.model.init  # PyTorch's start, as the paper's code
    c.train.encoder_lr = 2e-5
    c.features.max_tokens = 512
    c.features.max_frames = 512
    c.model.length = 512
    return c
