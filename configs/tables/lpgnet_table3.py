"""LPGNet, Table 3: modalities and LPIA ablations (IEMOCAP 4-class, Session 5 held out, 10 seeds)."""

CONFIG = "lpgnet_iemocap.py"
TITLE = "LPGNet Table 3: ablations (ACC and F1: one-vs-all binary averages, %)"
COLUMNS = (("binary_accuracy", "ACC"), ("binary_f1", "F1"))
ROWS = (
    ("full", "LPGNet", None, {}, (87.99, 87.96)),
    ("text", "Text only", None, {"model.modalities": "text"}, (81.39, 81.19)),
    ("audio", "Audio only", None, {"model.modalities": "audio"}, (84.53, 84.55)),
    ("no_inter", "w/o inter attention", None, {"model.inter_attention": False}, (86.22, 86.26)),
    ("no_intra", "w/o intra attention", None, {"model.intra_attention": False}, (87.03, 86.95)),
    # without the FFN the model has no dropout at all: LPGNet's only dropout is inside the FFN (Eq. 7)
    ("no_ffn", "w/o position-wise FFN", None, {"model.position_ffn": False}, (86.87, 86.75)),
    ("no_gates", "w/o dual-gated fusion", None, {"model.gated_fusion": False}, (86.62, 86.59)),
    ("no_context", "no context (each utterance alone; not in the paper)", None, {"model.context": False}, (None, None)),
)
