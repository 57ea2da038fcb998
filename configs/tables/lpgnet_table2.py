"""LPGNet, Table 2 (the rows on its own features): the linear baseline, LPGNet (utterance level) and
LPGNet (Frame) (token and MFCC-frame sequences of 512 positions, configs/lpgnet_frame_iemocap.py)."""

CONFIG = "lpgnet_iemocap.py"
TITLE = "LPGNet Table 2: the same features, linear classifier vs LPGNet (ACC and F1: one-vs-all binary averages, %)"
COLUMNS = (("binary_accuracy", "ACC"), ("binary_f1", "F1"))
ROWS = (
    ("linear", "Linear (each utterance alone)", "linear_iemocap.py", {}, (81.68, 80.75)),
    ("lpgnet", "LPGNet (utterance level)", None, {}, (87.99, 87.96)),
    ("frame", "LPGNet (Frame)", "lpgnet_frame_iemocap.py", {}, (83.87, 83.68)),
)
