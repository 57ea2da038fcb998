"""The dynamic-fusion paper's model and setting on the real IEMOCAP release (Section 4).

6 classes, seeded random 8:2 split, 40 MFCC, BiLSTM 2 x 128, DeBERTa-V3-base fine-tuned (2e-5) with
the rest at 1e-4, 8-head cross-modal attention, dropout 0.3, clipping 1.0, batch 64. Put the release
at data/IEMOCAP_full_release or pass --config.data.root. Other protocols:
--config.split.protocol=holdout (Session 5) or loso (5 folds).

The new layers (BiLSTM, projections, attention, classifier) start as PyTorch's defaults would
(``model.init = "torch"``, layers/torch_init.py; DeBERTa keeps its checkpoint's weights): the paper
names no framework, but fine-tunes DeBERTa-V3 and Wav2Vec2.0 checkpoints, whose common (Hugging Face)
code is PyTorch, and we take its code to be PyTorch. The paper tables built on this config (dynamic_fusion_table1/2) inherit it;
README numbers measured before it was set used Flax's start (``--config.model.init=flax`` repeats them).
What the paper leaves open and we chose (the encoder's dropout, the schedule, K/V sharing): see
mer_jax/models/dynamic_fusion.py.
"""

from mer_jax.config import base_config


def get_config():
    c = base_config()
    c.data.root = "data/IEMOCAP_full_release"
    c.text.encoder = "microsoft/deberta-v3-base"
    c.text.dtype = "bfloat16"  # compute dtype on accelerators; parameters stay float32
    c.model.init = "torch"  # the paper's code's start (see above)
    c.train.epochs = 20  # the paper's Table 4 follows training to epoch 20
    return c
