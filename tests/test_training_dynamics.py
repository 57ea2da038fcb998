"""The training-dynamics table (the dynamic-fusion paper's Table 4) and the validation loss, by hand."""

import numpy as np

from mer_jax.evaluation.report import training_dynamics
from mer_jax.training.loop import cross_entropy_of


def test_validation_loss_is_the_mean_negative_log_probability_of_the_label():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [0.1, 0.1, 0.8]])
    labels = np.array([0, 2, 2])
    expected = -(np.log(0.7) + np.log(0.25) + np.log(0.8)) / 3
    assert abs(cross_entropy_of(probabilities, labels) - expected) < 1e-12


def test_dynamics_every_five_epochs_and_the_last_with_mean_over_seeds_and_overfit_ratio():
    history = [{"epoch": e, "train_loss": [1.0 / e, 3.0 / e], "train_accuracy": [0.5 + e / 40] * 2,
                "validation_loss": [0.8, 0.8], "validation_accuracy": [0.5, 0.7]} for e in range(1, 13)]
    lines = training_dynamics(history)
    rows = [line.split() for line in lines[2:]]
    assert [int(r[0]) for r in rows] == [5, 10, 12]
    epoch10 = rows[1]
    assert epoch10[1] == "0.200" and epoch10[2] == "0.750" and epoch10[3] == "0.800" and epoch10[4] == "0.600"
    assert epoch10[5] == "1.25"  # 0.75 / 0.60
