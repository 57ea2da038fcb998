"""Model-ready examples: named arrays per example, some of them ragged, and the order of batches.

This is the hand-over point between the data side (readers, features) and the input pipeline:
plain numpy, no TensorFlow, so benchmarks and accelerator machines without TensorFlow can use it.

An example is what one row of a batch holds: an utterance (MFCC frames, tokens, a label) or a whole
dialogue (a sequence of utterance vectors and labels). Every example set has a ``label`` and a
``weight`` field of the same shape (``(n,)`` per utterance, or ragged rows per dialogue): weight 1
marks a real utterance, so metrics and prediction files read only what is real. Ragged fields are
padded with zeros to a few fixed sizes: the field's full size, or, with length buckets, the size of
the shortest bucket that holds every ragged field of the batch's examples, so the jitted step
compiles once per bucket and short examples do not pay for the longest.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mer_jax.data.features import AudioFeatures, preceding_turns, tokenize
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import Utterance

# train.class_weights: none, or each training utterance weighted by n / (C n_c) to the power 1 or 1/2
# (`Examples.class_weighted`)
CLASS_WEIGHT_NAMES = ("none", "balanced", "sqrt")


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
    buckets: tuple[dict[str, int], ...] = ()  # padded lengths of the length buckets, shortest first (see `length_buckets`)

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
        return Examples(pick(self.ids), {n: pick(f) for n, f in self.fields.items()}, self.sizes, self.buckets)

    @classmethod
    def concatenate(cls, parts: list["Examples"]) -> "Examples":
        """The examples of every part, in order, as one set (the parts share their fields and sizes)."""
        def joined(fields):
            if isinstance(fields[0], Ragged):
                return Ragged(np.concatenate([f.values for f in fields]), np.concatenate([f.lengths for f in fields]))
            return np.concatenate(fields)

        first = parts[0]
        return cls(joined([p.ids for p in parts]), {n: joined([p.fields[n] for p in parts]) for n in first.fields},
                   first.sizes, first.buckets)

    def with_buckets(self, buckets: tuple[dict[str, int], ...]) -> "Examples":
        return dataclasses.replace(self, buckets=tuple(buckets))

    def shapes(self) -> tuple[dict[str, int], ...]:
        """The padded lengths a batch may have: one per bucket, or the full sizes."""
        return self.buckets or (self.sizes,)

    def bucket_of(self) -> np.ndarray:
        """(n,) each example's bucket: the shortest of `shapes` that holds every one of its ragged fields."""
        fits = np.ones((len(self), len(self.shapes())), bool)
        for name, field in self.fields.items():
            if isinstance(field, Ragged):
                fits &= field.lengths[:, None] <= np.array([shape[name] for shape in self.shapes()])[None]
        return fits.argmax(axis=1)

    def padded(self, shape: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Every example as fixed-shape arrays, ragged fields padded to `shape` (default: the full sizes):
        one batch of all of them."""
        shape = shape or self.sizes
        return {n: f.padded(shape[n]) if isinstance(f, Ragged) else f for n, f in self.fields.items()}

    def utterance_ids(self) -> np.ndarray:
        """The ids of the real utterances, in the order in which `real` selects their outputs."""
        return self.ids.values if isinstance(self.ids, Ragged) else self.ids

    def real(self, padded_outputs: np.ndarray) -> np.ndarray:
        """Per-example outputs padded like ``weight`` (n, ...) -> the real utterances' outputs, flattened."""
        return padded_outputs[self.padded_field("weight") > 0]

    def padded_field(self, name: str) -> np.ndarray:
        field = self.fields[name]
        return field.padded(self.sizes[name]) if isinstance(field, Ragged) else field

    def in_order(self, outputs) -> np.ndarray:
        """Per-batch outputs [(N, B, ..., C) with each row's example index (-1: padding)] -> (N, n, ..., C)
        in example order, a dialogue's utterance axis at its full size (batches of shorter length
        buckets are zero-padded)."""
        full = (self.sizes["weight"],) if isinstance(self.fields["weight"], Ragged) else ()
        out = None
        for values, index in outputs:
            if out is None:
                out = np.zeros((values.shape[0], len(self), *full, values.shape[-1]), np.float32)
            real = index >= 0
            out[(slice(None), index[real], *(slice(0, d) for d in values.shape[2:-1]))] = values[:, real]
        return out

    def labels(self) -> np.ndarray:
        """The class index of every real utterance, flattened like `real`."""
        return self.real(self.padded_field("label"))

    def class_weighted(self, num_classes: int, power: float) -> "Examples":
        """Each real utterance weighted by (n / (C n_c)) ** power, n_c its class's count among the n real
        utterances (power 1: every class weighs the same in the loss, scikit-learn's "balanced"; 0.5:
        halfway), scaled so that the mean weight stays 1."""
        labels = self.labels()
        counts = np.bincount(labels, minlength=num_classes)
        per_class = (len(labels) / (num_classes * np.maximum(counts, 1))) ** power
        per_class = (per_class / per_class[labels].mean()).astype(np.float32)
        label, weight = self.fields["label"], self.fields["weight"]
        if isinstance(weight, Ragged):
            weighted = Ragged(weight.values * per_class[label.values], weight.lengths)
        else:
            weighted = weight * per_class[label]
        return dataclasses.replace(self, fields={**self.fields, "weight": weighted})


def utterance_examples(utterances: list[Utterance], indices, label_set: LabelSet, *,
                       audio: AudioFeatures | None = None, max_frames: int = 0,
                       waveforms: AudioFeatures | None = None, max_samples: int = 0,
                       tokenizer=None, max_tokens: int = 0, context_turns: int = 0) -> Examples:
    """One example per utterance in `utterances[indices]`: MFCC frames (``audio`` holds every utterance's,
    truncated to `max_frames`) when audio is given, waveforms (truncated to `max_samples`) when
    `waveforms` are, token ids when a tokenizer is (with `context_turns`, the transcript paired with
    up to that many preceding turns of its dialogue, and ``token_type_ids`` marking them), and the label."""
    indices = np.asarray(indices, dtype=np.int64)
    fields = {"label": np.array([label_set.index(utterances[i].label) for i in indices], np.int32),
              "weight": np.ones(len(indices), np.float32)}
    sizes = {}
    if audio is not None:
        frames = Ragged(audio.frames, audio.lengths).take(indices).truncated(max_frames)
        fields.update(mfcc=frames, mfcc_length=frames.lengths.astype(np.int32))
        sizes["mfcc"] = max_frames
    if waveforms is not None:
        samples = Ragged(waveforms.frames, waveforms.lengths).take(indices).truncated(max_samples)
        fields.update(waveform=samples, waveform_length=samples.lengths.astype(np.int32))
        sizes["waveform"] = max_samples
    if tokenizer is not None:
        contexts = preceding_turns(utterances, indices, context_turns) if context_turns else None
        tokens = tokenize([utterances[i].transcript for i in indices], tokenizer, max_tokens, contexts)
        lengths = tokens["attention_mask"].sum(axis=1)  # the tokenizer pads on the right
        for name, array in tokens.items():
            fields[name] = Ragged.from_rows([row[:n] for row, n in zip(array, lengths)], dtype=np.int32)
            sizes[name] = max_tokens
    return Examples(np.array([utterances[i].utterance_id for i in indices]), fields, sizes)


def length_buckets(examples: Examples, count: int, multiple: int = 8) -> tuple[dict[str, int], ...]:
    """Up to `count` padded shapes that group examples of similar length (none for ``count <= 1``).

    An example's fill is the largest fraction of its padded size that any of its ragged fields uses;
    bucket k pads every ragged field to the k/count quantile of the fills of `examples` (the training
    part, so that every part shares its shapes), rounded up to a multiple of `multiple`; the last
    bucket is the full sizes, so every example fits one.
    """
    ragged = {name: f.lengths for name, f in examples.fields.items() if isinstance(f, Ragged)}
    if count <= 1 or not ragged or not len(examples):
        return ()
    fill = np.max([np.minimum(lengths, examples.sizes[name]) / examples.sizes[name]
                   for name, lengths in ragged.items()], axis=0)
    shapes = []
    for fraction in [*np.quantile(fill, np.arange(1, count) / count), 1.0]:
        shape = {name: min(examples.sizes[name], multiple * math.ceil(fraction * examples.sizes[name] / multiple))
                 for name in ragged}
        if not shapes or shape != shapes[-1]:
            shapes.append(shape)
    return tuple(shapes)


def batch_order(n: int, global_batch_size: int, *, train: bool, seed: int = 0, epoch: int = 0,
                buckets: np.ndarray | None = None) -> np.ndarray:
    """(steps, global_batch_size) example indices of one pass; -1 marks a padding slot.

    Training: a permutation that depends only on (seed, epoch), the incomplete last batch dropped, so
    a resumed run sees the batches of an uninterrupted one. Evaluation: every example once, in order,
    the last batch padded. With `buckets` (each example's length bucket), the same examples are
    grouped by bucket (keeping their order within a bucket) before they are cut into batches, and
    training batches are then shuffled by the epoch alone, so that every seed's batch at one step
    comes from the same bucket (`batch_buckets`).
    """
    if train:
        if n < global_batch_size:
            raise ValueError(f"{n} training examples are fewer than one batch of {global_batch_size}")
        steps = n // global_batch_size
        order = np.random.default_rng([seed, epoch]).permutation(n)[: steps * global_batch_size]
    else:
        order = np.arange(n)
    if buckets is not None:
        order = order[np.argsort(buckets[order], kind="stable")]
    order = np.concatenate([order, np.full(-len(order) % global_batch_size, -1)]).reshape(-1, global_batch_size)
    return order[_bucket_shuffle(len(order), epoch)] if buckets is not None and train else order


def batch_buckets(n: int, global_batch_size: int, *, train: bool, epoch: int, buckets: np.ndarray) -> np.ndarray:
    """(steps,) the bucket that holds every example of each step of `batch_order` (with `buckets`), for
    any seed: batch j of the sorted examples holds positions up to (j + 1) * size - 1 of the kept ones,
    and a training pass keeps all but `dropped` examples, so its bucket is at most that of position
    (j + 1) * size - 1 + dropped of all the examples sorted by bucket."""
    steps = n // global_batch_size if train else -(-n // global_batch_size)
    dropped = n - steps * global_batch_size if train else 0
    last = np.minimum(np.arange(1, steps + 1) * global_batch_size - 1 + dropped, n - 1)
    bucket = np.sort(buckets)[last]
    return bucket[_bucket_shuffle(steps, epoch)] if train else bucket


def _bucket_shuffle(steps: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([epoch, 1]).permutation(steps)


def process_share(order: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
    """This process's contiguous slice of every global batch: (steps, global_batch_size / processes).

    Every process gets the same number of steps, and the slices of all processes, in process order,
    are the global batch (so a multi-host step sees exactly the rows of a one-host step).
    """
    steps, size = order.shape
    if size % process_count:
        raise ValueError(f"global batch size {size} is not divisible by {process_count} processes")
    return order.reshape(steps, process_count, size // process_count)[:, process_index]


def numpy_batches(examples: Examples, batch_size: int, *, train: bool = False, seed: int = 0, epoch: int = 0):
    """The batches `mer_jax.data.pipeline.batches` yields on one process, without TensorFlow (inference,
    benchmarks): padding slots have weight 0 and index -1; ragged fields padded to the step's bucket."""
    buckets = examples.bucket_of() if examples.buckets else None
    order = batch_order(len(examples), batch_size, train=train, seed=seed, epoch=epoch, buckets=buckets)
    step_bucket = (np.zeros(len(order), int) if buckets is None
                   else batch_buckets(len(examples), batch_size, train=train, epoch=epoch, buckets=buckets))
    for rows, bucket in zip(order, step_bucket):
        batch = examples.take(np.maximum(rows, 0)).padded(examples.shapes()[bucket])
        batch["weight"] = batch["weight"] * (rows >= 0).reshape(-1, *[1] * (batch["weight"].ndim - 1))
        batch["index"] = rows.astype(np.int32)
        yield batch
