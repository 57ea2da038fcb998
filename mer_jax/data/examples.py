"""Model-ready examples: MFCC frames, token ids and class indices of a set of utterances.

This is the hand-over point between the data side (readers, features) and the input pipeline:
plain numpy, no TensorFlow, so benchmarks and accelerator machines without TensorFlow can use it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.features import AudioFeatures, tokenize
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import Utterance


@dataclasses.dataclass(frozen=True)
class Examples:
    """n examples: ragged MFCCs (frames[offsets[i]:offsets[i]+lengths[i]]), tokens and labels."""

    ids: np.ndarray  # (n,) utterance ids
    frames: np.ndarray  # (total frames, n_mfcc)
    lengths: np.ndarray  # (n,)
    input_ids: np.ndarray  # (n, max_tokens)
    attention_mask: np.ndarray  # (n, max_tokens)
    labels: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.ids)

    def padded(self, max_frames: int) -> dict[str, np.ndarray]:
        """Every example as fixed-shape arrays (a batch of all of them), with a weight of 1."""
        mfcc, lengths = AudioFeatures(self.frames, self.lengths).padded(np.arange(len(self)), max_frames)
        return {"mfcc": mfcc, "mfcc_length": lengths, "input_ids": self.input_ids,
                "attention_mask": self.attention_mask, "label": self.labels,
                "weight": np.ones(len(self), np.float32)}


def make_examples(utterances: list[Utterance], indices: np.ndarray, audio: AudioFeatures | None, tokenizer,
                  label_set: LabelSet, max_tokens: int) -> Examples:
    """The examples of `utterances[indices]`; `audio` holds the MFCCs of all `utterances` (None: text only)."""
    indices = np.asarray(indices, dtype=np.int64)
    if audio is None:
        audio = AudioFeatures(np.zeros((0, 0), np.float32), np.zeros(len(utterances), np.int64))
    offsets = audio.offsets
    frames = [audio.frames[offsets[i]: offsets[i] + audio.lengths[i]] for i in indices]
    input_ids, attention_mask = tokenize([utterances[i].transcript for i in indices], tokenizer, max_tokens)
    labels = np.array([label_set.index(utterances[i].label) for i in indices], dtype=np.int32)
    return Examples(
        ids=np.array([utterances[i].utterance_id for i in indices]),
        frames=np.concatenate(frames) if frames else np.zeros((0, audio.frames.shape[1]), np.float32),
        lengths=audio.lengths[indices].astype(np.int32),
        input_ids=input_ids, attention_mask=attention_mask, labels=labels,
    )
