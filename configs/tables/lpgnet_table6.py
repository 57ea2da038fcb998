"""LPGNet, Table 6: the self-distillation weights lambda_task, lambda_CE, lambda_KL (Eq. 22)."""

CONFIG = "lpgnet_iemocap.py"
TITLE = "LPGNet Table 6: distillation loss weights (ACC and F1: one-vs-all binary averages, %)"
COLUMNS = (("binary_accuracy", "ACC"), ("binary_f1", "F1"))


def _weights(task, ce, kl):
    return {"objective.task_weight": task, "objective.ce_weight": ce, "objective.kl_weight": kl}


ROWS = (
    ("task1_ce1_kl1", "1.0 / 1.0 / 1.0", None, _weights(1.0, 1.0, 1.0), (87.35, 87.38)),
    ("task1_ce0_kl1", "1.0 / 0.0 / 1.0", None, _weights(1.0, 0.0, 1.0), (86.36, 86.53)),
    ("task1_ce1_kl0", "1.0 / 1.0 / 0.0", None, _weights(1.0, 1.0, 0.0), (87.27, 87.26)),
    ("task1.5_ce1_kl0", "1.5 / 1.0 / 0.0", None, _weights(1.5, 1.0, 0.0), (87.59, 87.58)),
    ("task1.5_ce1_kl0.3", "1.5 / 1.0 / 0.3 (the default)", None, _weights(1.5, 1.0, 0.3), (87.99, 87.96)),
)
