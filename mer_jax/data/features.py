"""Features: audio frames (40-dim MFCCs, or the log-mel spectrogram they are computed from), token ids from
transcripts (with their dialogue context), and an on-disk cache of the frames.

MFCCs are computed once per corpus and cached under a key that hashes every input file (path, size,
modification time) and every feature parameter, so a second run reuses them and a changed file or
parameter recomputes them. Frames beyond ``max_frames`` are truncated (the true, truncated length
is kept for masking).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import uuid

import jax
import numpy as np
from tqdm import tqdm

from mer_jax.data.audio import SAMPLE_RATE, audio_fingerprint, speed_perturbed, waveforms
from mer_jax.data.records import Utterance
from mer_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MfccParams:
    """librosa settings of the audio frames: 25 ms windows every 10 ms at 16 kHz by default; ``kind``
    ``mfcc`` (n_mfcc coefficients of the n_mels-band log-mel spectrogram) or ``logmel`` (its n_mels
    bands themselves, in dB: what SpecAugment masks in its paper)."""

    kind: str = "mfcc"
    n_mfcc: int = 40
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    max_frames: int = 300
    deltas: int = 0  # 1: append delta MFCCs; 2: delta and delta-delta
    speed: float = 1.0  # speed perturbation: the MFCCs of the waveform played this many times faster

    @classmethod
    def from_config(cls, features) -> "MfccParams":
        """The MFCC settings of a config's ``features`` section."""
        return cls(kind=features.frames, n_mfcc=features.n_mfcc, n_mels=features.n_mels,
                   hop_length=features.hop_length, max_frames=features.max_frames, deltas=features.deltas)

    @property
    def static_features(self) -> int:
        """The size of one frame before its deltas: n_mfcc, or n_mels for log-mel frames."""
        return self.n_mels if self.kind == "logmel" else self.n_mfcc


def frame_features(features) -> int:
    """The size of one frame a config's ``features`` section describes: n_mfcc (or n_mels) x (1 + deltas)."""
    return MfccParams.from_config(features).static_features * (1 + features.deltas)


def mfcc(wave: np.ndarray, params: MfccParams) -> np.ndarray:
    """(frames, n_mfcc (or n_mels) x (1 + deltas)) float32 MFCCs (or log-mel bands, ``params.kind``) of a
    16 kHz mono waveform (sped up by params.speed; then their deltas, computed over the whole
    utterance), truncated to params.max_frames."""
    import librosa  # noqa: PLC0415 (librosa pulls numba; only feature extraction needs it)

    if params.speed != 1.0:
        wave = speed_perturbed(wave, params.speed)

    # librosa.feature.mfcc is the DCT of exactly this log-mel spectrogram (power_to_db, top_db 80)
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wave, sr=SAMPLE_RATE, n_fft=params.n_fft, win_length=params.win_length, hop_length=params.hop_length,
        n_mels=params.n_mels))
    frames = logmel if params.kind == "logmel" else librosa.feature.mfcc(S=logmel, n_mfcc=params.n_mfcc)
    frames = np.concatenate([frames] + [librosa.feature.delta(frames, order=k, mode="nearest")
                                        for k in range(1, params.deltas + 1)])
    return np.ascontiguousarray(frames.T[: params.max_frames], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class AudioFeatures:
    """MFCC frames of many utterances end to end, utterance i's after those of 0..i-1 (as a
    `mer_jax.data.examples.Ragged`: ``Ragged(frames, lengths)``)."""

    frames: np.ndarray  # (total frames, n_mfcc)
    lengths: np.ndarray  # (n,)


def normalize_per_speaker(features: AudioFeatures, speakers: list[str]) -> AudioFeatures:
    """Standardise each speaker's frames with that speaker's own mean and standard deviation.

    Speaker normalisation, common in speaker-independent emotion recognition: it removes what is
    constant in a voice (vocal tract, recording channel) and keeps how the voice varies. It uses no
    labels, but it does use every utterance of a speaker, test speakers included (transductive).
    """
    speakers = np.asarray(speakers)
    owner = np.repeat(speakers, features.lengths)  # the speaker of every frame
    frames = np.empty_like(features.frames)
    for speaker in np.unique(speakers):
        mine = owner == speaker
        frames[mine] = (features.frames[mine] - features.frames[mine].mean(0)) / (features.frames[mine].std(0) + 1e-5)
    return AudioFeatures(frames, features.lengths)


def audio_features(utterances: list[Utterance], params: MfccParams, cache_dir=None) -> AudioFeatures:
    """MFCCs of every utterance, from the cache when the inputs and parameters are unchanged.

    With several processes (multi-host training) and a cache every host sees, each process reads and
    computes only its contiguous share of the utterances (of the records, with ``data.tfds``), writes
    it to the cache, and reads the others' shares back once all are written; process 0 then stores
    the whole set as one cache entry. Without a cache, every process computes every utterance.
    """
    if cache_dir is None:
        return _compute(utterances, params)
    path = pathlib.Path(cache_dir) / f"mfcc-{_cache_key(utterances, params)}.npz"
    if path.exists():
        return _load(path)
    index, count = jax.process_index(), jax.process_count()
    if count == 1:
        features = _compute(utterances, params)
        _save(path, features)
        return features
    from jax.experimental import multihost_utils  # noqa: PLC0415

    parts = [path.with_name(f"{path.stem}.part{i}of{count}.npz") for i in range(count)]
    share = np.array_split(np.arange(len(utterances)), count)[index]
    print(f"MFCC: process {index} of {count} computes utterances {share[0]}-{share[-1]} of {len(utterances)}"
          if len(share) else f"MFCC: process {index} of {count} has no utterances to compute", flush=True)
    _save(parts[index], _compute([utterances[i] for i in share], params))
    multihost_utils.sync_global_devices(f"MFCC shares written: {path.name}")
    shares = [_load(part) for part in parts]
    features = AudioFeatures(np.concatenate([s.frames for s in shares]), np.concatenate([s.lengths for s in shares]))
    multihost_utils.sync_global_devices(f"MFCC shares read: {path.name}")
    if index == 0:
        _save(path, features)
        for part in parts:
            part.unlink()
    return features


@functools.cache
def _compile_librosa() -> None:
    """librosa compiles its kernels (numba) on its first call, once per process: before the MFCC bar starts,
    so that the bar's rate and remaining time are those of the computation."""
    import librosa  # noqa: PLC0415

    librosa.feature.mfcc(y=np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32), sr=SAMPLE_RATE)


def _compute(utterances: list[Utterance], params: MfccParams) -> AudioFeatures:
    if utterances:
        _compile_librosa()
    per_utterance = [mfcc(wave, params) for wave in tqdm(waveforms([u.audio_path for u in utterances]),
                                                        total=len(utterances), desc="MFCC", unit="utt", leave=False)]
    if not per_utterance:  # a process's empty share
        return AudioFeatures(np.zeros((0, params.static_features * (1 + params.deltas)), np.float32),
                             np.zeros(0, np.int64))
    return AudioFeatures(np.concatenate(per_utterance), np.array([len(f) for f in per_utterance]))


def _load(path: pathlib.Path) -> AudioFeatures:
    with np.load(path) as cached:
        return AudioFeatures(cached["frames"], cached["lengths"])


def _save(path: pathlib.Path, features: AudioFeatures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: processes sharing a file system never write into the same file.
    tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp.npz")
    np.savez(tmp, frames=features.frames, lengths=features.lengths)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache entry


def waveform_features(utterances: list[Utterance], max_samples: int) -> AudioFeatures:
    """Every utterance's 16 kHz waveform cut to `max_samples`, for speech encoders: ``frames`` holds the
    samples end to end (total,), ``lengths`` each utterance's count."""
    waves = [wave[:max_samples] for wave in tqdm(waveforms([u.audio_path for u in utterances]), total=len(utterances),
                                                 desc="waveforms", unit="utt", leave=False)]
    return AudioFeatures(np.concatenate(waves) if waves else np.zeros(0, np.float32), np.array([len(w) for w in waves]))


def _cache_key(utterances: list[Utterance], params: MfccParams) -> str:
    fields = dataclasses.asdict(params)
    if params.speed == 1.0:  # unperturbed: the key MFCCs had before speed perturbation existed
        del fields["speed"]
    if params.kind == "mfcc":  # the key MFCCs had before log-mel frames existed
        del fields["kind"]
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for u in utterances:
        digest.update(f"{audio_fingerprint(u.audio_path)}\n".encode())
    return digest.hexdigest()[:20]


def tokenize(texts: list[str], tokenizer, max_length: int, contexts: list[list[str]] | None = None
             ) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask``, each (len(texts), max_length) int32, with a Hugging Face tokenizer.

    With `contexts` (the turns before text i, most recent first: `preceding_turns`), text i and its
    context are encoded as a pair (``[CLS] text [SEP] turn [SEP] earlier turn [SEP]`` for BERT and
    DeBERTa: turns joined by the tokenizer's separator), the context truncated to what `max_length`
    leaves, never the text; ``token_type_ids`` marks the context's tokens with 1 (0: the text's own
    tokens and the padding). A text without context, or too long to leave room for one, is encoded alone.
    """
    if contexts is not None:
        contexts = [f" {tokenizer.sep_token} ".join(turns) for turns in contexts]

    def encode(rows, pair: bool) -> dict[str, np.ndarray]:
        encoded = tokenizer([texts[i] for i in rows], [contexts[i] for i in rows] if pair else None,
                            max_length=max_length, padding="max_length", return_tensors="np",
                            truncation="only_second" if pair else True)
        segments = np.array([[s == 1 for s in encoded.sequence_ids(r)] for r in range(len(rows))], bool)
        # the pair's closing [SEP] belongs to the context too, as BERT's token types have it
        segments |= np.cumsum(segments, axis=1) > 0
        segments &= encoded["attention_mask"].astype(bool)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "token_type_ids": segments}

    n = len(texts)
    names = ("input_ids", "attention_mask") + (("token_type_ids",) if contexts is not None else ())
    out = {name: np.zeros((n, max_length), np.int32) for name in names}
    if not n:  # e.g. the empty training part of a cross-corpus evaluation
        return out
    paired = np.zeros(n, bool)
    if contexts is not None:
        alone = tokenizer(list(texts), truncation=False)["input_ids"]
        paired = np.array([bool(c) and len(ids) + 2 <= max_length for c, ids in zip(contexts, alone)])
    for pair in (False, True):
        rows = np.flatnonzero(paired == pair)
        if len(rows):
            for name, array in encode(rows, pair).items():
                if name in out:
                    out[name][rows] = array
    return out


def preceding_turns(utterances: list[Utterance], indices, turns: int) -> list[list[str]]:
    """The transcripts of the (at most) `turns` turns before each of `utterances[indices]` in its dialogue,
    most recent first: the dialogue context a text encoder reads beside the utterance.

    Only the turns among `utterances` count (a reader or label set that drops utterances drops them
    from the context too); an utterance without a dialogue id or turn index is a `ConfigError` (the
    config asks for context the corpus does not have).
    """
    lacking = [utterances[i].utterance_id for i in indices
               if utterances[i].dialogue_id is None or utterances[i].turn_index is None]
    if lacking:
        raise ConfigError(f"{len(lacking)} utterance(s) have no dialogue_id or turn_index (e.g. "
                          f"{', '.join(lacking[:5])}): text.context_turns needs a corpus whose reader knows "
                          "dialogues and turn order (IEMOCAP, the demo corpus, MELD, a manifest with dialogue_id and turn)")
    dialogues: dict[str, list[tuple[int, str]]] = {}
    for u in utterances:
        if u.dialogue_id is not None and u.turn_index is not None:
            dialogues.setdefault(u.dialogue_id, []).append((u.turn_index, u.transcript))
    for turns_of in dialogues.values():
        turns_of.sort()
    contexts = []
    for i in indices:
        u = utterances[i]
        earlier = [text for turn, text in dialogues[u.dialogue_id] if turn < u.turn_index][-turns:] if turns else []
        contexts.append(earlier[::-1])
    return contexts
