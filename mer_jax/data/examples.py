"""Model-ready examples: named arrays per example, some of them ragged, and the order of batches.

This is the hand-over point between the data side (readers, features) and the input pipeline:
plain numpy, no TensorFlow, so benchmarks and accelerator machines without TensorFlow can use it.

An example is what one row of a batch holds: an utterance (MFCC frames, tokens, a label) or a whole
dialogue (a sequence of utterance vectors and labels). Every example set has a ``label`` and a
``weight`` field of the same shape (``(n,)`` per utterance, or ragged rows per dialogue): weight 1
marks a real utterance, so metrics and prediction files read only what is real. Ragged fields are
padded with zeros to a fixed size per field, so the jitted step never recompiles.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.features import AudioFeatures, tokenize
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import Utterance


@dataclasses.dataclass(frozen=True)
class Ragged:
    """Rows of different lengths stored end to end: row i is values[offsets[i]: offsets[i] + lengths[i]]."""

    values: np.ndarray  # (total, ...)
    lengths: np.ndarray  # (n,)

    @classmethod
    def from_rows(cls, rows: list[np.ndarray], row_shape: tuple[int, ...] = (), dtype=np.float32) -> "Ragged":
        values = np.concatenate(rows) if rows else np.zeros((0, *row_shape), dtype)
        return cls(values, np.array([len(r) for r in rows], np.int64))

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, indices) -> "Ragged":
        offsets = self.offsets
        return Ragged.from_rows([self.values[offsets[i]: offsets[i] + self.lengths[i]] for i in indices],
                                self.values.shape[1:], self.values.dtype)

    def truncated(self, size: int) -> "Ragged":
        """Every row cut to at most `size` items."""
        return Ragged.from_rows([self.values[s: s + min(n, size)] for s, n in zip(self.offsets, self.lengths)],
                                self.values.shape[1:], self.values.dtype)

    def padded(self, size: int) -> np.ndarray:
        """(n, size, ...) rows zero-padded (or truncated) to `size`."""
        out = np.zeros((len(self), size, *self.values.shape[1:]), self.values.dtype)
        for row, (start, length) in enumerate(zip(self.offsets, np.minimum(self.lengths, size))):
            out[row, :length] = self.values[start: start + length]
        return out


Field = np.ndarray | Ragged


@dataclasses.dataclass(frozen=True)
class Examples:
    """n examples: named fields, each an array (n, ...) or a `Ragged` padded to ``sizes[name]``.

    ``ids`` names what each example predicts, shaped like ``fields["weight"]``: utterance ids (n,), or
    one `Ragged` row of utterance ids per dialogue.
    """

    ids: Field
    fields: dict[str, Field]
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)  # padded length of each ragged field

    def __post_init__(self):
        for name in ("label", "weight"):
            if name not in self.fields:
                raise ValueError(f"examples need a {name!r} field; got {sorted(self.fields)}")
        missing = [n for n, f in self.fields.items() if isinstance(f, Ragged) and n not in self.sizes]
        if missing:
            raise ValueError(f"ragged fields {missing} have no padded size")

    def __len__(self) -> int:
        return len(self.fields["label"])

    def take(self, indices) -> "Examples":
        indices = np.asarray(indices, np.int64)
        pick = lambda f: f.take(indices) if isinstance(f, Ragged) else f[indices]  # noqa: E731
        return Examples(pick(self.ids), {n: pick(f) for n, f in self.fields.items()}, self.sizes)

    def padded(self) -> dict[str, np.ndarray]:
        """Every example as fixed-shape arrays: one batch of all of them."""
        return {n: f.padded(self.sizes[n]) if isinstance(f, Ragged) else f for n, f in self.fields.items()}

    def utterance_ids(self) -> np.ndarray:
        """The ids of the real utterances, in the order in which `real` selects their outputs."""
        return self.ids.values if isinstance(self.ids, Ragged) else self.ids

    def real(self, padded_outputs: np.ndarray) -> np.ndarray:
        """Per-example outputs padded like ``weight`` (n, ...) -> the real utterances' outputs, flattened."""
        return padded_outputs[self.padded_field("weight") > 0]

    def padded_field(self, name: str) -> np.ndarray:
        field = self.fields[name]
        return field.padded(self.sizes[name]) if isinstance(field, Ragged) else field

    def labels(self) -> np.ndarray:
        """The class index of every real utterance, flattened like `real`."""
        return self.real(self.padded_field("label"))


def utterance_examples(utterances: list[Utterance], indices, label_set: LabelSet, *,
                       audio: AudioFeatures | None = None, max_frames: int = 0,
                       tokenizer=None, max_tokens: int = 0) -> Examples:
    """One example per utterance in `utterances[indices]`: MFCC frames (``audio`` holds every utterance's,
    truncated to `max_frames`) when audio is given, token ids when a tokenizer is, and the label."""
    indices = np.asarray(indices, dtype=np.int64)
    fields = {"label": np.array([label_set.index(utterances[i].label) for i in indices], np.int32),
              "weight": np.ones(len(indices), np.float32)}
    sizes = {}
    if audio is not None:
        frames = Ragged(audio.frames, audio.lengths).take(indices).truncated(max_frames)
        fields.update(mfcc=frames, mfcc_length=frames.lengths.astype(np.int32))
        sizes["mfcc"] = max_frames
    if tokenizer is not None:
        fields["input_ids"], fields["attention_mask"] = tokenize(
            [utterances[i].transcript for i in indices], tokenizer, max_tokens)
    return Examples(np.array([utterances[i].utterance_id for i in indices]), fields, sizes)


def batch_order(n: int, global_batch_size: int, *, train: bool, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """(steps, global_batch_size) example indices of one pass; -1 marks a padding slot.

    Training: a permutation that depends only on (seed, epoch), the incomplete last batch dropped, so
    a resumed run sees the batches of an uninterrupted one. Evaluation: every example once, in order,
    the last batch padded.
    """
    if train:
        if n < global_batch_size:
            raise ValueError(f"{n} training examples are fewer than one batch of {global_batch_size}")
        steps = n // global_batch_size
        order = np.random.default_rng([seed, epoch]).permutation(n)[: steps * global_batch_size]
    else:
        order = np.concatenate([np.arange(n), np.full(-n % global_batch_size, -1)])
    return order.reshape(-1, global_batch_size)


def process_share(order: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
    """This process's contiguous slice of every global batch: (steps, global_batch_size / processes).

    Every process gets the same number of steps, and the slices of all processes, in process order,
    are the global batch (so a multi-host step sees exactly the rows of a one-host step).
    """
    steps, size = order.shape
    if size % process_count:
        raise ValueError(f"global batch size {size} is not divisible by {process_count} processes")
    return order.reshape(steps, process_count, size // process_count)[:, process_index]


def numpy_batches(examples: Examples, batch_size: int):
    """Evaluation batches without TensorFlow (inference, benchmarks): fixed shapes, padding weight 0."""
    for rows in batch_order(len(examples), batch_size, train=False):
        batch = examples.take(np.maximum(rows, 0)).padded()
        batch["weight"] = batch["weight"] * (rows >= 0).reshape(-1, *[1] * (batch["weight"].ndim - 1))
        batch["index"] = rows.astype(np.int32)
        yield batch
