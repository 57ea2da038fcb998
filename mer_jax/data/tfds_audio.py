"""Waveforms read back from tensorflow-datasets records by their ``tfds:`` audio paths.

`mer_jax.data.tfds_datasets.read_records` gives each utterance the audio path
``tfds:<dataset dir>/<split>#<utterance id>`` (`record_path`); `mer_jax.data.audio` decodes such paths
through `record_waveforms`. TensorFlow is imported only when records are read, so the audio room
imports this module without it.
"""

from __future__ import annotations

import collections

import numpy as np

RECORD_SCHEME = "tfds:"


def record_path(data_dir, split: str, utterance_id: str) -> str:
    """The audio path of utterance `utterance_id` in split `split` of the records in `data_dir`."""
    return f"{RECORD_SCHEME}{data_dir}/{split}#{utterance_id}"


def record_waveforms(paths: list[str]):
    """The waveform of every ``tfds:`` audio path, in order, read split by split in record order.

    Records are read sequentially; a waveform read before its turn waits in memory until it is due
    (none does when `paths` follow the records' order, as `read_records` returns them).
    """
    wanted = collections.defaultdict(set)  # (dataset dir, split) -> ids
    for path in paths:
        location, _, utterance_id = path.removeprefix(RECORD_SCHEME).rpartition("#")
        wanted[location].add(utterance_id)
    streams = {location: _stream(location, ids) for location, ids in wanted.items()}
    pending: dict[str, np.ndarray] = {}
    for path in paths:
        location, _, utterance_id = path.removeprefix(RECORD_SCHEME).rpartition("#")
        while path not in pending:
            try:
                found_id, wave = next(streams[location])
            except StopIteration:
                raise FileNotFoundError(f"{path}: no record with id {utterance_id!r} in {location}") from None
            pending[f"{RECORD_SCHEME}{location}#{found_id}"] = wave
        yield pending.pop(path)


def _stream(location: str, ids: set[str]):
    from mer_jax.data import tf_runtime  # noqa: F401, PLC0415 (TensorFlow, quietly)
    import tensorflow_datasets as tfds  # noqa: PLC0415

    directory, _, split = location.rpartition("/")
    records = tfds.builder_from_directory(directory).as_dataset(split=split)
    for record in tfds.as_numpy(records.map(lambda r: {"utterance_id": r["utterance_id"], "audio": r["audio"]})):
        utterance_id = record["utterance_id"].decode()
        if utterance_id in ids:
            yield utterance_id, record["audio"]
