"""Run summaries: fold results combined, and the short text report printed at the end of a run.

Every number is printed beside the protocol that produced it (split, label set, corpus).
"""

from __future__ import annotations

import numpy as np

HEADLINE = ("wa", "ua", "weighted_f1", "macro_f1", "binary_accuracy", "binary_f1")


def summarize_seeds(per_seed: list[dict]) -> dict:
    """The metrics of runs that differ only in their seed: mean and standard deviation of each number
    (headline metrics and per-class F1), and how many seeds."""
    summary = {"seeds": len(per_seed), "classes": per_seed[0]["classes"]}
    for name in HEADLINE:
        values = [m[name] for m in per_seed]
        summary[name], summary[f"{name}_std"] = float(np.mean(values)), float(np.std(values))
    for name in ("per_class_f1", "per_class_recall"):
        classes = per_seed[0][name]
        summary[name] = {c: float(np.mean([m[name][c] for m in per_seed])) for c in classes}
        summary[f"{name}_std"] = {c: float(np.std([m[name][c] for m in per_seed])) for c in classes}
    return summary


def summarize_folds(folds: list[dict]) -> dict:
    """The run's test metrics: one fold's own (with its spread over seeds, if several), or the mean and
    standard deviation over folds of the headline metrics; the same for the seeds' ensemble (``ensemble``),
    where a run has several seeds."""
    def summary(tests: list[dict]) -> dict:
        if len(tests) == 1:
            return {k: v for k, v in tests[0].items() if k not in ("confusion_matrix", "classes", "n")}
        return {**{name: float(np.mean([t[name] for t in tests])) for name in HEADLINE},
                **{f"{name}_std": float(np.std([t[name] for t in tests])) for name in HEADLINE}}

    results = {"test": summary([f["test"] for f in folds]), "folds": folds}
    if "ensemble" in folds[0]:
        results["ensemble"] = {"test": summary([f["ensemble"]["test"] for f in folds])}
    return results


def format_report(results: dict, config) -> str:
    folds = results["folds"]
    protocol = folds[0]["protocol"] if len(folds) == 1 else f"{len(folds)} folds: " + folds[0]["protocol"].split(",")[0]
    inputs = _inputs(config)
    lines = [
        f"model: {config.model.name} ({config.model.modalities}); text encoder: {config.text.encoder}"
        + (f"; computes in {config.model.dtype}" if config.model.dtype != "float32" else "")
        + (f"; training loss weighted by class ({config.train.class_weights})" if config.train.class_weights != "none"
           else ""),
        *([f"inputs: {'; '.join(inputs)}"] if inputs else []),
        f"data: {results['corpus']}; label set {config.data.label_set}"
        + (f", labels mapped by {config.data.label_map}" if config.data.get("label_map") else "")
        + f"; {results['skipped_bad_input']} utterance(s) skipped as bad input"
        + ("; excluded by the label set: " + ", ".join(f"{k} {v}" for k, v in sorted(results["excluded_by_label"].items()))
           if results.get("excluded_by_label") else ""),
        f"protocol: {protocol}; checkpoint chosen by validation {config.train.select_metric}"
        + ("; MFCCs normalised per speaker (test speakers' unlabelled frames included)"
           if config.features.speaker_normalization else ""),
    ]
    for k, fold in enumerate(folds):
        t = fold["test"]
        name = f"fold {k} " if len(folds) > 1 else ""
        epoch = f", best epoch {fold['best_epoch']}" if "best_epoch" in fold else ""
        if "seeds" in fold:
            for s in fold["seeds"]:
                st = s["test"]
                best = f" (best epoch {s['best_epoch']})" if "best_epoch" in s else ""
                lines.append(f"{name}seed {s['seed']} test{best}: WA {st['wa']:.4f}  "
                             f"UA {st['ua']:.4f}  weighted F1 {st['weighted_f1']:.4f}  "
                             f"binary acc {st['binary_accuracy']:.4f}  binary F1 {st['binary_f1']:.4f}")
            for d in fold.get("dropped_seeds", ()):
                lines.append(f"{name}seed {d['seed']} dropped: training diverged at epoch {d['epoch']}, step {d['step']} "
                             f"({d['cause']}; train.nonfinite = 'drop_seed'): not in the mean, spread or ensemble below")
            lines.append(f"{name}test ({fold['sizes']['test']} utt., mean ± std over {t['seeds']} seeds): "
                         + "  ".join(f"{label} {t[key]:.4f} ± {t[key + '_std']:.4f}" for key, label in (
                             ("wa", "WA"), ("ua", "UA"), ("weighted_f1", "weighted F1"),
                             ("binary_accuracy", "binary acc"), ("binary_f1", "binary F1"))))
            if "ensemble" in fold:
                e = fold["ensemble"]["test"]
                lines.append(f"{name}test of the {t['seeds']} seeds' ensemble (mean probabilities): WA {e['wa']:.4f}  "
                             f"UA {e['ua']:.4f}  weighted F1 {e['weighted_f1']:.4f}  macro F1 {e['macro_f1']:.4f}")
            continue
        lines.append(f"{name}test ({fold['sizes']['test']} utt.{epoch}): "
                     f"WA {t['wa']:.4f}  UA {t['ua']:.4f}  weighted F1 {t['weighted_f1']:.4f}  "
                     f"macro F1 {t['macro_f1']:.4f}")
    if len(folds) == 1 and "seeds" in folds[0]:
        t = folds[0]["test"]
        lines.append("per-class F1 (mean over seeds): " + ", ".join(f"{c} {v:.3f}" for c, v in t["per_class_f1"].items()))
    elif len(folds) == 1:
        t = folds[0]["test"]
        lines.append("per-class F1: " + ", ".join(f"{c} {v:.3f}" for c, v in t["per_class_f1"].items()))
        lines.append("confusion matrix (rows true, columns predicted; " + " ".join(t["classes"]) + "):")
        lines.extend("  " + " ".join(f"{x:4d}" for x in row) for row in t["confusion_matrix"])
    else:
        for what, s in (("", results["test"]), ("the seeds' ensemble, ", results.get("ensemble", {}).get("test"))):
            if s:
                lines.append(f"{what}mean over folds: WA {s['wa']:.4f} ± {s['wa_std']:.4f}  UA {s['ua']:.4f} ± "
                             f"{s['ua_std']:.4f}  weighted F1 {s['weighted_f1']:.4f} ± {s['weighted_f1_std']:.4f}")
    if len(folds) == 1 and folds[0].get("history"):
        lines.extend(training_dynamics(folds[0]["history"]))
    return "\n".join(lines)


def _inputs(config) -> list[str]:
    """What the run changed in its inputs, in words: dialogue context, MFCC deltas, masking, speed and gain perturbation."""
    a, said = config.augment, []
    if config.text.context_turns:
        said.append(f"each transcript read with up to {config.text.context_turns} preceding turns of its dialogue")
    if config.features.deltas:
        said.append("MFCC deltas" + (" and delta-deltas" if config.features.deltas == 2 else ""))
    if a.freq_masks or a.time_masks:
        said.append(f"SpecAugment masks ({a.freq_masks} x up to {a.freq_width} coefficients, "
                    f"{a.time_masks} x up to {a.time_width} frames)")
    if a.speeds:
        said.append("speed perturbation (the training part once more at speed " + ", ".join(map(str, a.speeds)) + ")")
    if a.gain_db:
        said.append(f"gain perturbation (+-{a.gain_db:g} dB)")
    return said


def seed_mean(values: list) -> float:
    """The mean over seeds of a history value, leaving out dropped seeds (null: training diverged)."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def training_dynamics(history: list[dict], every: int = 5) -> list[str]:
    """The dynamic-fusion paper's Table 4 for a run: train and validation loss and accuracy every `every`
    epochs (and the last), mean over seeds, with the overfit ratio train / validation accuracy."""
    lines = ["training dynamics (mean over seeds; train: the epoch's batches in train mode, loss = the objective; "
             "validation: cross-entropy and WA):",
             "  epoch  train loss  train acc  val loss  val acc  overfit ratio (train/val acc)"]
    for entry in history:
        if entry["epoch"] % every and entry is not history[-1]:
            continue
        train_loss, train_acc, val_loss, val_acc = (seed_mean(entry[k]) for k in (
            "train_loss", "train_accuracy", "validation_loss", "validation_accuracy"))
        ratio = f"{train_acc / val_acc:.2f}" if val_acc > 0 else "–"
        lines.append(f"  {entry['epoch']:5d}  {train_loss:10.3f}  {train_acc:9.3f}  {val_loss:8.3f}  {val_acc:7.3f}  {ratio}")
    return lines
