"""Metrics against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn import metrics as sk

from mer_jax.evaluation.metrics import classification_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    m = classification_metrics(labels, predictions, ["a", "b", "c", "d"])
    assert m["wa"] == pytest.approx(sk.accuracy_score(labels, predictions))
    assert m["ua"] == pytest.approx(sk.balanced_accuracy_score(labels, predictions))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(labels, predictions, average="weighted"))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(labels, predictions, average="macro"))
    assert list(m["per_class_f1"].values()) == pytest.approx(list(sk.f1_score(labels, predictions, average=None)))
    assert m["confusion_matrix"] == sk.confusion_matrix(labels, predictions).tolist()
    binary_acc = [sk.accuracy_score(labels == c, predictions == c) for c in range(4)]
    binary_f1 = [sk.f1_score(labels == c, predictions == c) for c in range(4)]
    assert m["binary_accuracy"] == pytest.approx(np.mean(binary_acc))
    assert m["binary_f1"] == pytest.approx(np.mean(binary_f1))


def test_hand_computed_example():
    # true: a a a b ; predicted: a a b b  -> recall a 2/3, b 1 ; UA 5/6 ; WA 3/4
    m = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1], ["a", "b"])
    assert m["wa"] == pytest.approx(0.75)
    assert m["ua"] == pytest.approx(5 / 6)
    assert m["per_class_f1"] == pytest.approx({"a": 0.8, "b": 2 / 3})
    assert m["confusion_matrix"] == [[2, 1], [0, 1]]
