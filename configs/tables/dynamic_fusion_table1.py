"""The dynamic-fusion paper, Table 1: the paper's model beside unimodal models and its baseline (IEMOCAP
6 classes, the paper's random 8:2 split, configs/dynamic_fusion_iemocap.py). Methods built from parts
mer_jax does not have are listed as not built, with the paper's numbers.

"Params (M)" counts every parameter of our model, the text encoder's included (see Table 2's note).
"""

from mer_jax.configs.tables.dynamic_fusion_table2 import BASELINE, COLUMNS, CONFIG, FULL  # noqa: F401

TITLE = "Dynamic fusion, Table 1: comparison (accuracy = WA, F1 = weighted F1, UA, in %)"
ROWS = (
    ("text", "DeBERTa-V3 (text only, fine-tuned)", None, {"model.modalities": "text"}, (63.21, 60.8, None, 44.0)),
    ("audio", "BiLSTM over MFCC (audio only; not in the paper)", None, {"model.modalities": "audio"},
     (None, None, None, None)),
    # the paper's [3] row: wav2vec2-base (94.4 M parameters) fine-tuned on the audio alone; ours mixes its
    # layers with learned weights (SUPERB) and pools the projected states; offline, point audio.encoder at a
    # local copy (--config.audio.encoder=/path/to/wav2vec2-base)
    ("wav2vec2", "Wav2Vec2.0 [3] (wav2vec2-base, audio only, fine-tuned)", None,
     {"model.modalities": "audio", "audio.encoder": "facebook/wav2vec2-base", "train.batch_size": 16},
     (45.46, 42.3, None, 94.4)),
    BASELINE,
    ("full", "Ours (the full model)", None, {}, FULL[4]),
)
MISSING = (
    ("BLSTM+DCNN [9]", "no DCNN speech model in mer_jax", (64.78, 62.1, None, 12.4)),
    ("COGMEN [19]", "a graph model over dialogue context and speakers, not in mer_jax", (78.9, 76.5, None, 28.7)),
)
