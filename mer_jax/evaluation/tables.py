"""Paper tables from finished runs: ours (mean ± std over seeds, %) beside the paper's numbers, and,
for runs of several seeds, their ensemble (the mean of the seeds' class probabilities) on a line below.

A table module (configs/tables/) names the rows; each row's run folder holds its
``metrics.json`` and ``config.json``. Above the table: the data, protocol, features, seeds and
epochs that produced our numbers, and the command-line overrides every row got. Rows the project
cannot build yet (the module's ``MISSING``: label, reason, the paper's numbers) are listed as such.

Columns are metric paths of the test summary (``wa``, ``binary_f1``, ``per_class_f1.hap``), in %,
or ``parameters``: one model's parameter count, in millions.
"""

from __future__ import annotations

import importlib
import json
import pathlib

from mer_jax.config import load_run_config


def load_table(name: str):
    """The table module `name` (``lpgnet_table3``, ``tables/lpgnet_table3.py`` or ``configs/tables/...``)."""
    stem = pathlib.Path(name).stem
    try:
        return importlib.import_module(f"mer_jax.configs.tables.{stem}")
    except ModuleNotFoundError:
        from mer_jax.configs import tables  # noqa: PLC0415

        known = sorted(p.stem for p in pathlib.Path(tables.__file__).parent.glob("*.py") if p.stem != "__init__")
        raise FileNotFoundError(f"no table {name!r}; known: {known}") from None


def _value(summary: dict, path: str) -> tuple[float, float | None] | None:
    """(mean, std or None) of a metric path such as ``binary_f1`` or ``per_class_f1.hap``; None if absent."""
    head, _, tail = path.partition(".")
    if tail:
        mean = summary.get(head, {}).get(tail)
        std = summary.get(f"{head}_std", {}).get(tail)
    else:
        mean, std = summary.get(head), summary.get(f"{head}_std")
    return None if mean is None else (mean, std)


def _ours(value, path: str) -> str:
    if value is None:
        return "–"
    mean, std = value
    if path == PARAMETERS:
        return f"{mean / 1e6:.2f}"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


PARAMETERS = "parameters"


def _row_values(metrics: dict, columns, summary: dict) -> list:
    parameters = metrics["folds"][0].get(PARAMETERS)
    return [((parameters, None) if parameters is not None else None) if path == PARAMETERS else _value(summary, path)
            for path, _ in columns]


def markdown(table, row_dirs: dict[str, pathlib.Path], overrides: list[str] = ()) -> str:
    """The table as markdown, from each row's finished run folder (by row name); rows without one are
    listed as not run."""
    finished = {name: d for name, d in row_dirs.items() if (d / "metrics.json").exists()}
    first = next(iter(finished.values()))
    config = load_run_config(first / "config.json")
    metrics = json.loads((first / "metrics.json").read_text())
    if "utterance_features" in config:
        features = (f"text {config.utterance_features.text} ({config.text.encoder}), "
                    f"audio {config.utterance_features.audio}")
    else:
        encoders = {}
        for name, row_dir in finished.items():
            row = load_run_config(row_dir / "config.json")
            encoders.setdefault(row.text.encoder + (" (frozen)" if row.train.freeze_encoder else ""), []).append(name)
        features = "MFCC; text encoder " + "; ".join(f"{encoder}: {', '.join(rows)}" if len(encoders) > 1 else encoder
                                                     for encoder, rows in encoders.items())
    lines = [f"### {table.TITLE}", "",
             f"- data: {metrics['corpus']}, label set {config.data.label_set} (rows may change it)",
             f"- protocol: {metrics['folds'][0]['protocol']}; checkpoint per seed by validation "
             f"{config.train.select_metric}; test scored once",
             f"- features: {features}",
             f"- seeds: {config.train.seeds} (mean ± std over seeds), {config.train.epochs} epochs; "
             f"{config.model.init} initialisation"
             + ("; an ensemble line scores the mean of the seeds' class probabilities, each seed at its own "
                "best validation epoch" if "ensemble" in metrics else "")]
    if overrides:
        lines.append("- every row (over the row's own settings): " + " ".join(f"`{o}`" for o in overrides))
    lines.append("")
    headers = [h for _, h in table.COLUMNS]
    missing = getattr(table, "MISSING", ())
    paper_columns = any(x is not None for *_, paper in (*table.ROWS, *missing) for x in paper)
    if paper_columns:
        lines.append("| row | " + " | ".join(f"{h} (ours) | {h} (paper)" for h in headers) + " |")
    else:
        lines.append("| row | " + " | ".join(headers) + " |")
    lines.append("|---|" + "---|" * len(headers) * (1 + paper_columns))
    def paper_cell(path, reported):
        return "–" if reported is None else f"{reported:.1f}" if path == PARAMETERS else f"{reported:.2f}"

    def cells(metrics, summary, reported):
        values = _row_values(metrics, table.COLUMNS, summary) if metrics is not None else None
        out = []
        for column, ((path, _), paper_value) in enumerate(zip(table.COLUMNS, reported)):
            out.append(_ours(values[column], path) if values is not None else "" if column else "not run")
            if paper_columns:
                out.append(paper_cell(path, paper_value))
        return " | ".join(out)

    for name, label, _, _, paper in table.ROWS:
        metrics = json.loads((finished[name] / "metrics.json").read_text()) if name in finished else None
        lines.append(f"| {label} | {cells(metrics, metrics and metrics['test'], paper)} |")
        if metrics is not None and "ensemble" in metrics:
            seeds = load_run_config(finished[name] / "config.json").train.seeds
            lines.append(f"| {label}: ensemble of the {seeds} seeds | "
                         f"{cells(metrics, metrics['ensemble']['test'], [None] * len(paper))} |")
    for label, reason, paper in missing:
        cells = []
        for (path, _), reported in zip(table.COLUMNS, paper):
            cells.append(f"not built: {reason}" if not cells else "")
            if paper_columns:
                cells.append(paper_cell(path, reported))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
