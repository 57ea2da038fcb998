"""Classification metrics that emotion-recognition papers report.

* WA: weighted accuracy, i.e. plain accuracy over utterances.
* UA: unweighted accuracy, the mean of per-class recalls (robust to class imbalance).
* weighted / macro F1 and per-class F1; the confusion matrix (rows true, columns predicted).
* LPGNet's one-vs-all scores: each class as a binary task (this class vs the rest), accuracy and F1
  of the positive class, averaged over classes.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(labels, predictions, class_names: list[str] | tuple[str, ...]) -> dict:
    """All metrics of `predictions` against `labels` (class indices), as plain Python numbers."""
    num_classes = len(class_names)
    cm = confusion_matrix(labels, predictions, num_classes).astype(np.float64)
    total = cm.sum()
    support, predicted, correct = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    recall = _safe_divide(correct, support)
    precision = _safe_divide(correct, predicted)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = support > 0
    # One-vs-all: class c against the rest; true negatives are everything off row c and column c.
    true_negative = total - support - predicted + correct
    return {
        "n": int(total),
        "wa": float(correct.sum() / total) if total else 0.0,
        "ua": float(recall[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": {name: float(v) for name, v in zip(class_names, f1)},
        "per_class_recall": {name: float(v) for name, v in zip(class_names, recall)},
        "binary_accuracy": float(((correct + true_negative) / total).mean()) if total else 0.0,
        "binary_f1": float(f1.mean()),
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "classes": list(class_names),
    }
