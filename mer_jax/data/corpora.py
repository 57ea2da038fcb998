"""Corpus readers by name, so a config can say which one reads its data."""

from __future__ import annotations

from mer_jax.data.iemocap import read_iemocap
from mer_jax.data.records import ReadReport, Utterance


def read_corpus(data_config) -> tuple[list[Utterance], ReadReport]:
    """Read the corpus a config's ``data`` section names, raising or skipping bad input as it asks."""
    on_error = "skip" if data_config.skip_bad_input else "raise"
    if data_config.corpus == "iemocap":
        return read_iemocap(data_config.root, data_config.label_set, on_error=on_error)
    raise ValueError(f"unknown corpus {data_config.corpus!r}; known: iemocap")
