"""A run's report files beside its metrics: confusion matrix and training curves as PNG, and a markdown
summary (data, protocol, seeds, headline metrics, per-class precision / recall / F1, one row per fold).

Written at the end of `mer-jax train` and again by `mer-jax evaluate`. The per-class table and the
confusion matrix pool every fold's (and every seed's) test predictions: a cross-validation run's
headline numbers are still the mean ± std over folds, as the report prints them.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (servers, CI, Colab renders the PNGs)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from mer_jax.evaluation.report import seed_mean  # noqa: E402

CONFUSION, CURVES, SUMMARY = "confusion_matrix.png", "training_curves.png", "report.md"
HEADLINE = (("wa", "WA"), ("ua", "UA"), ("weighted_f1", "weighted F1"), ("macro_f1", "macro F1"))


def pooled_confusion(results: dict) -> tuple[np.ndarray, list[str], int]:
    """The test confusion matrix summed over folds and seeds, the class names, and how many seeds."""
    matrices, classes, seeds = [], None, 1
    for fold in results["folds"]:
        tests = [s["test"] for s in fold["seeds"]] if "seeds" in fold else [fold["test"]]
        seeds = len(tests)
        matrices += [np.array(t["confusion_matrix"]) for t in tests]
        classes = tests[0]["classes"]
    return np.sum(matrices, axis=0), classes, seeds


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class of a confusion matrix (rows true, columns predicted)."""
    hits, true, predicted = np.diag(matrix).astype(float), matrix.sum(1), matrix.sum(0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, true, out=np.zeros_like(hits), where=true > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=precision + recall > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true}


def plot_confusion(matrix: np.ndarray, classes: list[str], path: pathlib.Path, title: str) -> None:
    """Counts and row-normalised (recall) panels side by side, every cell annotated."""
    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.4 * len(classes), 1.5 + 0.6 * len(classes)), constrained_layout=True)
    for ax, values, name, fmt in ((axes[0], matrix, "counts", "d"), (axes[1], rows, "row-normalised", ".2f")):
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true", title=name)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, format(value, fmt), ha="center", va="center", color="white" if rows[i, j] > 0.5 else "black",
                    fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(histories: list[list[dict]], path: pathlib.Path) -> None:
    """Train and validation loss and accuracy per epoch, mean over seeds, one line per fold."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for k, history in enumerate(histories):
        epochs = [h["epoch"] for h in history]
        tag = f" (fold {k})" if len(histories) > 1 else ""
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            for part, style in (("train", "--"), ("validation", "-")):
                ax.plot(epochs, [seed_mean(h[f"{part}_{metric}"]) for h in history], style, color=f"C{k}",
                        label=f"{part}{tag}")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (train: the objective; validation: cross-entropy)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (validation: WA)")
    acc_ax.legend(fontsize=7)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report_files(workdir, results: dict, config, report_text: str) -> list[pathlib.Path]:
    """The PNGs and report.md of a run (its metrics.json `results`); returns the files written."""
    workdir = pathlib.Path(workdir)
    folds = results["folds"]
    matrix, classes, seeds = pooled_confusion(results)
    pooled = f"{len(folds)} fold(s)" + (f" x {seeds} seeds" if seeds > 1 else "")
    plot_confusion(matrix, classes, workdir / CONFUSION, f"test, {results.get('corpus', '')} ({pooled}, summed)")
    written = [workdir / CONFUSION]
    histories = [f["history"] for f in folds if f.get("history")]
    if histories:
        plot_curves(histories, workdir / CURVES)
        written.append(workdir / CURVES)
    test = results["test"]
    spread = len(folds) > 1 or seeds > 1
    lines = [f"# {workdir.name}: {config.model.name} ({config.model.modalities}) on {results.get('corpus', '?')}", "",
             "```", report_text, "```", "",
             f"Data: {config.data.corpus} at `{config.data.root}`, label set {config.data.label_set}; protocol "
             f"{config.split.protocol} ({folds[0]['protocol']}); checkpoint by validation {config.train.select_metric}; "
             f"seed(s) {config.seed}" + (f" to {config.seed + config.train.seeds - 1}" if config.train.seeds > 1 else "")
             + "; the full config is `config.json`.", "",
             "| metric | test" + (" (mean ± std over " + ("folds" if len(folds) > 1 else "seeds") + ")" if spread else "")
             + " |", "|---|---|"]
    lines += [f"| {label} | {test[key]:.4f}" + (f" ± {test[key + '_std']:.4f}" if spread else "") + " |"
              for key, label in HEADLINE]
    if len(folds) > 1:
        lines += ["", "| fold | protocol | test utt. | " + " | ".join(label for _, label in HEADLINE) + " |",
                  "|---|---|---|" + "---|" * len(HEADLINE)]
        lines += [f"| {k} | {f['protocol']} | {f['sizes']['test']} | "
                  + " | ".join(f"{f['test'][key]:.4f}" for key, _ in HEADLINE) + " |" for k, f in enumerate(folds)]
    table = per_class(matrix)
    lines += ["", f"Per class, test predictions pooled over {pooled}:", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {table['precision'][i]:.3f} | {table['recall'][i]:.3f} | {table['f1'][i]:.3f} | "
              f"{int(table['support'][i])} |" for i, c in enumerate(classes)]
    lines += ["", f"![confusion matrix]({CONFUSION})"] + ([f"![training curves]({CURVES})"] if histories else [])
    (workdir / SUMMARY).write_text("\n".join(lines) + "\n")
    return [*written, workdir / SUMMARY]
