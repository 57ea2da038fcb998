"""Corpus readers by name, so a config can say which one reads its data."""

from __future__ import annotations

from mer_jax.data.cremad import read_cremad
from mer_jax.data.emodb import read_emodb
from mer_jax.data.iemocap import read_iemocap
from mer_jax.data.manifest import read_manifest
from mer_jax.data.meld import read_meld
from mer_jax.data.ravdess import read_ravdess

READERS = {
    "iemocap": read_iemocap,
    "emodb": read_emodb,
    "ravdess": read_ravdess,
    "cremad": read_cremad,
    "meld": read_meld,  # all three official partitions; pair with split.protocol = "official"
    "manifest": read_manifest,  # data.root is the manifest file (.csv / .tsv / .jsonl)
}
