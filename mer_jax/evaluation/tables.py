"""Paper tables from finished runs: ours (mean ± std over seeds, %) beside the paper's numbers.

A table module (mer_jax/configs/tables/) names the rows; each row's run folder holds its
``metrics.json`` and ``config.json``. Above the table: the data, protocol, features, seeds and
epochs that produced our numbers.
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
        known = sorted(p.stem for p in pathlib.Path(__file__).parent.parent.joinpath("configs", "tables").glob("*.py")
                       if p.stem != "__init__")
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


def _ours(value) -> str:
    if value is None:
        return "–"
    mean, std = value
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def markdown(table, row_dirs: dict[str, pathlib.Path]) -> str:
    """The table as markdown, from each row's finished run folder (by row name)."""
    first = next(iter(row_dirs.values()))
    config = load_run_config(first / "config.json")
    metrics = json.loads((first / "metrics.json").read_text())
    features = (f"text {config.utterance_features.text} ({config.text.encoder}), audio {config.utterance_features.audio}"
                if "utterance_features" in config else f"text encoder {config.text.encoder}, MFCC")
    lines = [f"### {table.TITLE}", "",
             f"- data: {metrics['corpus']}, label set {config.data.label_set} (rows may change it)",
             f"- protocol: {metrics['folds'][0]['protocol']}; checkpoint per seed by validation "
             f"{config.train.select_metric}; test scored once",
             f"- features: {features}",
             f"- seeds: {config.train.seeds} (mean ± std over seeds), {config.train.epochs} epochs", ""]
    headers = [h for _, h in table.COLUMNS]
    paper_columns = any(x is not None for *_, paper in table.ROWS for x in paper)
    if paper_columns:
        lines.append("| row | " + " | ".join(f"{h} (ours) | {h} (paper)" for h in headers) + " |")
    else:
        lines.append("| row | " + " | ".join(headers) + " |")
    lines.append("|---|" + "---|" * len(headers) * (1 + paper_columns))
    for name, label, _, _, paper in table.ROWS:
        summary = json.loads((row_dirs[name] / "metrics.json").read_text())["test"]
        cells = []
        for (path, _), reported in zip(table.COLUMNS, paper):
            cells.append(_ours(_value(summary, path)))
            if paper_columns:
                cells.append("–" if reported is None else f"{reported:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
