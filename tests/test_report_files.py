"""A run's report files: confusion matrix and curves as PNG, report.md with hand-checkable tables."""

import matplotlib.image
import numpy as np

from mer_jax.config import base_config
from mer_jax.evaluation.plots import per_class, pooled_confusion, write_report_files


def _fold(matrix, protocol, wa):
    test = {"confusion_matrix": matrix, "classes": ["ang", "neu", "sad"], "wa": wa, "ua": wa - 0.1,
            "weighted_f1": wa - 0.2, "macro_f1": wa - 0.3}
    history = [{"epoch": e, "train_loss": [1.0 / e], "train_accuracy": [0.5 + 0.1 * e],
                "validation_loss": [1.2 / e], "validation_accuracy": [0.4 + 0.1 * e]} for e in (1, 2, 3)]
    return {"protocol": protocol, "sizes": {"test": int(np.sum(matrix))}, "test": test, "history": history}


def test_per_class_precision_recall_f1_by_hand():
    # rows true, columns predicted: ang 3 of 4 right, 1 taken for neu; neu 2 of 2; sad 0 of 1 (taken for neu)
    table = per_class(np.array([[3, 1, 0], [0, 2, 0], [0, 1, 0]]))
    np.testing.assert_allclose(table["precision"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(table["recall"], [0.75, 1.0, 0.0])
    np.testing.assert_allclose(table["f1"], [2 * 0.75 / 1.75, 2 * 0.5 / 1.5, 0.0])
    np.testing.assert_array_equal(table["support"], [4, 2, 1])


def test_cross_validation_report_pools_the_matrix_and_lists_every_fold(tmp_path):
    folds = [_fold([[3, 1, 0], [0, 2, 0], [0, 1, 0]], "fold A", 0.70), _fold([[1, 0, 0], [0, 1, 1], [0, 0, 2]], "fold B", 0.80)]
    results = {"folds": folds, "corpus": "toy", "test": {"wa": 0.75, "wa_std": 0.05, "ua": 0.65, "ua_std": 0.05,
                                                          "weighted_f1": 0.55, "weighted_f1_std": 0.05,
                                                          "macro_f1": 0.45, "macro_f1_std": 0.05}}
    matrix, classes, seeds = pooled_confusion(results)
    np.testing.assert_array_equal(matrix, [[4, 1, 0], [0, 3, 1], [0, 1, 2]])
    config = base_config()
    written = write_report_files(tmp_path, results, config, "the text report")
    assert [p.name for p in written] == ["confusion_matrix.png", "training_curves.png", "report.md"]
    for png in written[:2]:
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0.01  # a real picture, not blank
    report = (tmp_path / "report.md").read_text()
    assert "| WA | 0.7500 ± 0.0500 |" in report and "the text report" in report
    assert "| 0 | fold A | 7 | 0.7000 | 0.6000 | 0.5000 | 0.4000 |" in report
    assert "| 1 | fold B | 5 | 0.8000 | 0.7000 | 0.6000 | 0.5000 |" in report
    # pooled: ang precision 4/4, recall 4/5; neu 3/5, 3/4; sad 2/3, 2/3
    assert "| ang | 1.000 | 0.800 | 0.889 | 5 |" in report and "| sad | 0.667 | 0.667 | 0.667 | 3 |" in report
