"""LPGNet, Table 7: per-class F1 with 4 classes (excited merged into happy) and 6 classes.

"Overall" is our reading: the paper does not name the metric; we take weighted F1 (F1 per class
weighted by its test support), the usual overall score of conversational emotion recognition and the
one SDT, the method the table compares with, reports. The SDT* rows (SDT on LPGNet's features) are
listed as not built, with the paper's numbers.
"""

CONFIG = "lpgnet_iemocap.py"
TITLE = "LPGNet Table 7: per-class F1 and weighted F1 (%)"
COLUMNS = (("per_class_f1.hap", "Happy"), ("per_class_f1.sad", "Sad"), ("per_class_f1.neu", "Neutral"),
           ("per_class_f1.ang", "Angry"), ("per_class_f1.exc", "Excited"), ("per_class_f1.fru", "Frustrated"),
           ("weighted_f1", "Overall"))  # Overall: weighted F1, our reading (see above)
ROWS = (
    ("four_class", "LPGNet (4-class)", None, {"data.label_set": "iemocap4"}, (92.06, 85.38, 83.99, 86.75, None, None, 87.83)),
    ("six_class", "LPGNet (6-class)", None, {"data.label_set": "iemocap6"}, (51.3, 79.1, 73.99, 72.19, 77.83, 68.59, 71.78)),
)
MISSING = (
    ("SDT* (4-class; SDT on LPGNet's features)", "SDT (a self-distillation Transformer for conversations) is not in mer_jax",
     (89.72, 86.35, 82.32, 88.15, None, None, 86.62)),
    ("SDT* (6-class)", "SDT is not in mer_jax", (38.59, 78.09, 69.52, 73.53, 70.63, 65.13, 67.47)),
)
