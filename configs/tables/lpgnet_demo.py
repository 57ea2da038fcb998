"""LPGNet on the synthetic demo corpus: does the dialogue context help where an utterance alone is
ambiguous (the demo's backchannels)? The full model, its no-context control, each modality alone,
and the utterance-level dynamic-fusion model, on one protocol (Session 5 held out, 4 classes)."""

CONFIG = "lpgnet_demo.py"
TITLE = "LPGNet on the synthetic demo corpus (ACC and F1: one-vs-all binary averages, %; not IEMOCAP)"
COLUMNS = (("binary_accuracy", "ACC"), ("binary_f1", "F1"), ("ua", "UA"), ("weighted_f1", "weighted F1"))
ROWS = (
    ("full", "LPGNet", None, {}, (None,) * 4),
    ("no_context", "LPGNet, no context (each utterance alone)", None, {"model.context": False}, (None,) * 4),
    ("text", "LPGNet, text only", None, {"model.modalities": "text"}, (None,) * 4),
    ("audio", "LPGNet, audio only", None, {"model.modalities": "audio"}, (None,) * 4),
    ("dynamic_fusion", "dynamic fusion (utterance level, end to end)", "demo.py",
     {"data.label_set": "iemocap4", "train.seeds": 5, "train.select_metric": "binary_f1"}, (None,) * 4),
)
