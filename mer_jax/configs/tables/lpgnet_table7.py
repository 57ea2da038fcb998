"""LPGNet, Table 7: per-class F1 with 4 classes (excited merged into happy) and 6 classes."""

CONFIG = "lpgnet_iemocap.py"
TITLE = "LPGNet Table 7: per-class F1 and weighted F1 (%)"
COLUMNS = (("per_class_f1.hap", "Happy"), ("per_class_f1.sad", "Sad"), ("per_class_f1.neu", "Neutral"),
           ("per_class_f1.ang", "Angry"), ("per_class_f1.exc", "Excited"), ("per_class_f1.fru", "Frustrated"),
           ("weighted_f1", "Overall"))
ROWS = (
    ("four_class", "LPGNet (4-class)", None, {"data.label_set": "iemocap4"}, (92.06, 85.38, 83.99, 86.75, None, None, 87.83)),
    ("six_class", "LPGNet (6-class)", None, {"data.label_set": "iemocap6"}, (51.3, 79.1, 73.99, 72.19, 77.83, 68.59, 71.78)),
)
