"""LPGNet's utterance-level vectors (papers/lpgnet.md, Section 4.2), one fold at a time.

LPGNet reads each dialogue as a sequence of utterance vectors: text (the paper: the [CLS] state of
BERT-base fine-tuned on the emotion task) and audio (the paper: emotion2vec's 768-dim utterance
embeddings). ``config.utterance_features`` picks how each is made:

text
  ``finetuned_cls`` / ``finetuned_mean``: train the utterance-level dynamic-fusion model, text only,
  with ``text.encoder`` (the paper's fine-tuned BERT), then read its encoder's first-token state /
  mean of real-token states; ``finetuned_hidden``: that model's classifier input instead (its
  ``extractor_d_model``-wide hidden layer, one linear map from its logits). ``frozen_cls`` /
  ``frozen_mean``: the pretrained ``text.encoder`` as it is (no training), first-token or mean pooling.
audio
  ``bilstm``: train the dynamic-fusion model, audio only (MFCC -> BiLSTM), and read its mean BiLSTM
  state. ``mfcc_stats``: each utterance's MFCC mean and standard deviation over its frames (the
  first ``features.max_frames``; 2 x n_mfcc, no training). ``emotion2vec``: the paper's vectors,
  imported from ``audio_dir/<utterance id>.npy`` as emotion2vec's own extraction writes them.
  ``speech_frozen``: the pretrained speech encoder ``audio.encoder`` (wav2vec2, HuBERT, WavLM,
  data2vec-audio, emotion2vec) as it is, its ``audio.layer`` hidden state (all layers averaged for ``weighted``)
  averaged over each utterance's real frames, batched by length. ``speech_finetuned``: train the
  dynamic-fusion model, audio only, fine-tuning that encoder, and read its mean projected state.

No labels leak: a trained extractor (``finetuned_*``, ``bilstm``, ``speech_finetuned``) trains on the fold's training part
and selects its epoch on the fold's validation part, exactly as an utterance-level run of that
fold would (`mer_jax.training.loop.train_fold`, in ``<fold workdir>/extractors/<modality>``, which a
rerun resumes); the test part's labels reach it only to be scored once, as in every run. Frozen,
MFCC and imported vectors use no labels at all. Every utterance (test included) then gets its
vector from the same extractor, except with ``utterance_features.cross_fit_folds = K``: the training
part is cut into K groups of whole dialogues and each group's vectors come from an extractor trained
without it (``extractors/<modality>_fold<k>``, the group as its test part), so that the training
vectors are as noisy as the test vectors a model will meet; stacked on in-sample vectors, a model
learns to trust them more than it should.

The choices the paper leaves open: the extractor is the dynamic-fusion model (``train.*`` defaults:
AdamW, warm-up cosine, clipping 1.0, selection by ``ua``) with ``model.d_model``, ``model.dropout``,
epochs, batch size and learning rates from the ``extractor_*`` fields, one seed (``config.seed``);
its MFCC, token and text-encoder settings are the run's ``features`` and ``text`` sections.

Computed vectors (frozen and trained) are cached under ``data.cache_dir`` as
``utterances-<feature>-<key>.npz``, the key a hash of everything they depend on: the feature, the
encoder and its settings (or the whole extractor config), the corpus' utterance ids with their
transcripts (text) or audio files' path, size and modification time (audio), and, for trained
extractors, the fold's training and validation ids with their labels. MFCC statistics and imported
emotion2vec vectors are cheap to rebuild and are not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import uuid
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.config import base_config, validate
from mer_jax.data.audio import audio_fingerprint
from mer_jax.data.examples import Ragged, length_buckets, numpy_batches, utterance_examples
from mer_jax.data.features import preceding_turns, tokenize
from mer_jax.data.splits import Split
from mer_jax.data.tokenizer import SMALL_TRANSFORMER, WORDS, get_tokenizer, tokenizer_name
from mer_jax.errors import ConfigError
from mer_jax.layers.pooling import masked_mean
from mer_jax.models.text_encoder import encode_text
from mer_jax.training.experiment import ExperimentData, examples_of, max_samples
from mer_jax.training.workdir import HARMLESS, is_writer, prepare_workdir

EMOTION2VEC_DIM = 768
FROZEN_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Trainer:
    """How the extractors train: the training loop's `train_fold` and `load_best`, handed in by the loop
    (which imports this module, so this module does not import it back). ``train_fold(config, data, split,
    workdir)`` trains a fold's run in `workdir` (or resumes it, or finds it finished); ``load_best(config,
    workdir)`` is that run's best model in evaluation mode."""

    train_fold: Callable
    load_best: Callable


def utterance_vectors(config, data: ExperimentData, split: Split, workdir: pathlib.Path,
                      trainer: Trainer) -> dict[str, np.ndarray]:
    """{"text": (n, Dt), "audio": (n, Da)} float32 for the modalities of ``config.model.modalities``, row i
    the vector of ``data.utterances[i]``; trained extractors learn from `split`'s training part only, by
    `trainer`."""
    workdir = pathlib.Path(workdir)
    modalities = config.model.modalities.split("+")
    vectors = {}
    if "audio" in modalities:  # first: imported vectors that lack an utterance fail before a text extractor trains
        vectors["audio"] = audio_vectors(config, data, split, workdir, trainer)
    if "text" in modalities:
        vectors["text"] = text_vectors(config, data, split, workdir, trainer)
    return vectors


def text_vectors(config, data: ExperimentData, split: Split, workdir: pathlib.Path, trainer: Trainer) -> np.ndarray:
    """(n, hidden) text vectors of every utterance, as ``utterance_features.text`` says."""
    feature = config.utterance_features.text
    pooling = feature.split("_")[1]  # cls | mean | hidden
    corpus = [(u.utterance_id, u.transcript) for u in data.utterances]
    if feature.startswith("frozen"):
        if config.text.encoder == SMALL_TRANSFORMER or tokenizer_name(config.text) == WORDS:
            raise ConfigError(f"utterance_features.text = {feature!r} reads a pretrained text.encoder (a Hugging Face "
                              "BERT or DeBERTa folder or id, with its own tokenizer); the small 'transformer' has random "
                              "weights. Name one, or use finetuned_cls / finetuned_mean")
        key = {"feature": feature, "encoder": config.text.encoder, "encoder_files": _folder_stats(config.text.encoder),
               "tokenizer": tokenizer_name(config.text), "dtype": config.text.dtype,
               "max_tokens": config.features.max_tokens, "context_turns": config.text.context_turns,
               "pooling": pooling, "utterances": corpus}
        return _cached(config, feature, key, lambda: frozen_text_vectors(config, data, pooling))
    output = "hidden" if pooling == "hidden" else f"text_{pooling}"
    return _trained_vectors(config, data, split, workdir, trainer, "text", output, feature, corpus)


def audio_vectors(config, data: ExperimentData, split: Split, workdir: pathlib.Path, trainer: Trainer) -> np.ndarray:
    """(n, dim) audio vectors of every utterance, as ``utterance_features.audio`` says."""
    section = config.utterance_features
    if section.audio == "emotion2vec":
        return read_emotion2vec(section.audio_dir, [u.utterance_id for u in data.utterances])
    corpus = [(u.utterance_id, audio_fingerprint(u.audio_path)) for u in data.utterances]
    if section.audio == "speech_frozen":
        key = {"feature": section.audio, "encoder": config.audio.encoder, "layer": config.audio.layer,
               "encoder_files": _folder_stats(config.audio.encoder), "dtype": config.model.dtype,
               "max_samples": max_samples(config.features), "utterances": corpus}
        return _cached(config, section.audio, key, lambda: frozen_speech_vectors(config, data))
    if section.audio == "speech_finetuned":
        return _trained_vectors(config, data, split, workdir, trainer, "audio", "audio_mean", section.audio, corpus)
    if data.audio is None:
        raise ConfigError(f"utterance_features.audio = {section.audio!r} needs the corpus' MFCCs, but the "
                          "experiment data holds none (load it with load_experiment_data for this config)")
    if section.audio == "mfcc_stats":
        return mfcc_stats(data.audio)
    return _trained_vectors(config, data, split, workdir, trainer, "audio", "audio_mean", section.audio, corpus)


# --- features without training ---


def mfcc_stats(audio) -> np.ndarray:
    """(n, 2 * n_mfcc): every utterance's MFCC mean, then standard deviation, over its frames."""
    out = np.zeros((len(audio.lengths), 2 * audio.frames.shape[1]), np.float32)
    for i, (start, length) in enumerate(zip(Ragged(audio.frames, audio.lengths).offsets, audio.lengths)):
        if length:
            frames = audio.frames[start: start + length].astype(np.float64)
            out[i] = np.concatenate([frames.mean(0), frames.std(0)])
    return out


def read_emotion2vec(folder, utterance_ids: list[str]) -> np.ndarray:
    """(n, 768) emotion2vec utterance vectors from ``folder/<utterance id>.npy`` (shape (768,) or (1, 768))."""
    if not folder:
        raise ConfigError("utterance_features.audio = 'emotion2vec' reads utterance_features.audio_dir, which is "
                          "empty; point it at the folder of emotion2vec's <utterance id>.npy vectors")
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"utterance_features.audio_dir {folder} is not a folder (emotion2vec vectors, "
                                "one <utterance id>.npy each)")
    out = np.zeros((len(utterance_ids), EMOTION2VEC_DIM), np.float32)
    missing, bad = [], []
    for i, uid in enumerate(utterance_ids):
        path = folder / f"{uid}.npy"
        if not path.is_file():
            missing.append(uid)
            continue
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            bad.append(f"{path.name} (unreadable: {e})")
            continue
        if vector.shape not in ((EMOTION2VEC_DIM,), (1, EMOTION2VEC_DIM)):
            bad.append(f"{path.name} (shape {vector.shape})")
        elif not np.issubdtype(vector.dtype, np.number) or not np.isfinite(vector).all():
            bad.append(f"{path.name} (non-finite or non-numeric values)")
        else:
            out[i] = vector.reshape(EMOTION2VEC_DIM)
    if missing or bad:
        lines = []
        if missing:
            lines.append(f"{len(missing)} utterance(s) have no vector, e.g. {', '.join(missing[:10])}")
        if bad:
            lines.append(f"{len(bad)} file(s) are not one {EMOTION2VEC_DIM}-dim vector (shape ({EMOTION2VEC_DIM},) "
                         f"or (1, {EMOTION2VEC_DIM})): {'; '.join(bad[:10])}")
        raise ConfigError(f"emotion2vec vectors in {folder} (utterance_features.audio_dir): " + "; ".join(lines))
    return out


def frozen_text_vectors(config, data: ExperimentData, pooling: str, batch_size: int = FROZEN_BATCH_SIZE) -> np.ndarray:
    """(n, hidden) first-token (``cls``) or mean real-token (``mean``) final states of the pretrained
    ``text.encoder``, in eval mode, over every transcript (``features.max_tokens`` tokens, with its dialogue
    context when ``text.context_turns`` asks: the mean then reads the utterance's own tokens only)."""
    from mer_jax.encoders import from_pretrained  # noqa: PLC0415

    encoder, _ = from_pretrained(config.text.encoder, dtype=jnp.dtype(config.text.dtype))
    tokenizer = get_tokenizer(tokenizer_name(config.text), [])
    every = np.arange(len(data.utterances))
    turns = config.text.context_turns
    tokens = tokenize([u.transcript for u in data.utterances], tokenizer, config.features.max_tokens,
                      preceding_turns(data.utterances, every, turns) if turns else None)
    graph, state = nnx.split(encoder)

    @jax.jit
    def forward(state, batch):
        hidden, own = encode_text(nnx.merge(graph, state), batch)
        hidden = hidden.astype(jnp.float32)
        return hidden[:, 0] if pooling == "cls" else masked_mean(hidden, own)

    n = len(every)
    rows = np.concatenate([every, np.zeros(-n % batch_size, np.int64)])  # the last batch padded with row 0
    out = [np.asarray(forward(state, {k: v[b] for k, v in tokens.items()})) for b in rows.reshape(-1, batch_size)]
    return np.concatenate(out)[:n].astype(np.float32)


def frozen_speech_vectors(config, data: ExperimentData, batch_size: int = FROZEN_BATCH_SIZE) -> np.ndarray:
    """(n, hidden) the pretrained ``audio.encoder``'s states averaged over each utterance's real frames: one
    layer's (``audio.layer``), or every layer's mean (``weighted``: the learned mix's starting point), in
    ``model.dtype``, in batches of similar length (``features.length_buckets``)."""
    from mer_jax.models.speech_encoder import build_speech_branch  # noqa: PLC0415

    branch = build_speech_branch(config.audio, dtype=config.model.dtype, frozen=True, rngs=nnx.Rngs(config.seed))
    graph, state = nnx.split(branch)

    @jax.jit
    def forward(state, batch):
        states, mask = nnx.merge(graph, state)(batch["waveform"], batch["waveform_length"])
        return masked_mean(states.astype(jnp.float32), mask)

    examples = utterance_examples(data.utterances, np.arange(len(data.utterances)), data.label_set,
                                  waveforms=data.waveforms, max_samples=max_samples(config.features))
    examples = examples.with_buckets(length_buckets(examples, config.features.length_buckets))
    out = np.zeros((len(examples), branch.hidden_size), np.float32)
    for batch in numpy_batches(examples, batch_size):
        rows = batch.pop("index")
        out[rows[rows >= 0]] = np.asarray(forward(state, {k: batch[k] for k in ("waveform", "waveform_length")}))[rows >= 0]
    return out


# --- trained extractors ---


def extractor_config(config, modality: str):
    """The utterance-level run that trains the `modality` extractor: the dynamic-fusion model on that
    modality alone, with the run's seed, data, features, split and text sections, its validation
    metric, and the ``utterance_features.extractor_*`` settings."""
    section = config.utterance_features
    c = base_config("dynamic_fusion")
    c.seed = config.seed
    for name in ("data", "features", "split", "text"):
        c[name] = config[name].to_dict()
    if modality == "audio" and section.audio == "speech_finetuned":
        c.audio = config.audio.to_dict()
        c.train.audio_encoder_lr = config.train.audio_encoder_lr
    c.model.modalities = modality
    c.model.d_model = section.extractor_d_model
    c.model.dropout = section.extractor_dropout
    c.train.epochs = section.extractor_epochs
    c.train.batch_size = section.extractor_batch_size
    c.train.lr = section.extractor_lr
    c.train.encoder_lr = section.extractor_encoder_lr
    c.train.class_weights = section.extractor_class_weights
    c.train.ema_decay = section.extractor_ema_decay
    c.train.select_metric = config.train.select_metric
    c.train.seeds = 1
    return c


def _trained_vectors(config, data: ExperimentData, split: Split, workdir: pathlib.Path, trainer: Trainer,
                     modality: str, output: str, feature: str, corpus: list) -> np.ndarray:
    extractor = extractor_config(config, modality)
    labelled = lambda part: [(data.utterances[i].utterance_id, data.utterances[i].label) for i in part]  # noqa: E731
    settings = {f"{s}.{k}": v for s, fields in json.loads(extractor.to_json()).items() if isinstance(fields, dict)
                for k, v in fields.items() if f"{s}.{k}" not in HARMLESS}  # fields that change no number

    def extracted(part: Split, folder: pathlib.Path) -> np.ndarray:
        key = {"feature": feature, "output": output, "extractor": settings, "seed": extractor.seed,
               "encoder_files": _folder_stats(extractor.text.encoder) if modality == "text" else [],
               "utterances": corpus, "train": labelled(part.train), "validation": labelled(part.validation)}
        return _cached(config, feature, key, lambda: train_and_extract(extractor, data, part, folder, output, trainer))

    vectors = extracted(split, workdir / "extractors" / modality)
    folds = config.utterance_features.cross_fit_folds
    for k, held_out in enumerate(_training_folds(data, split, folds, config.split.seed) if folds > 1 else []):
        part = dataclasses.replace(split, train=np.setdiff1d(split.train, held_out), test=held_out)
        vectors[held_out] = extracted(part, workdir / "extractors" / f"{modality}_fold{k}")[held_out]
    return vectors


def _training_folds(data: ExperimentData, split: Split, folds: int, seed: int) -> list[np.ndarray]:
    """The training part in `folds` groups of whole dialogues (of utterances where a corpus has none), seeded."""
    units = np.array([data.utterances[i].dialogue_id or data.utterances[i].utterance_id for i in split.train])
    names = np.random.default_rng(seed).permutation(np.unique(units))
    if len(names) < folds:
        raise ConfigError(f"utterance_features.cross_fit_folds = {folds}, but the training part has only "
                          f"{len(names)} dialogues")
    group_of = {name: k % folds for k, name in enumerate(names)}
    return [np.sort(split.train[[group_of[u] == k for u in units]]) for k in range(folds)]


def train_and_extract(extractor, data: ExperimentData, split: Split, workdir: pathlib.Path, output: str,
                      trainer: Trainer) -> np.ndarray:
    """Train (or resume, or find finished) the extractor run in `workdir` on `split` by `trainer`, then its
    best model's `output` for every utterance of `data`."""
    try:
        validate(extractor)
    except ConfigError as e:
        raise ConfigError(f"the utterance feature extractor ({extractor.model.modalities} only, from "
                          f"utterance_features.extractor_*): {e}") from None
    print(f"utterance features: the {extractor.model.modalities} extractor trains (or resumes) in {workdir}")
    try:  # a folder that holds an extractor of another config is refused
        prepare_workdir(extractor, workdir)
    except ConfigError as e:
        raise ConfigError(f"utterance feature extractor: {e}; or delete {workdir} to train it anew") from None
    trainer.train_fold(extractor, data, split, workdir)
    model = trainer.load_best(extractor, workdir)
    tokenizer = None
    if extractor.model.modalities == "text":
        from transformers import AutoTokenizer  # noqa: PLC0415

        tokenizer = AutoTokenizer.from_pretrained(str(workdir / "tokenizer"))
    examples = examples_of(extractor, data, np.arange(len(data.utterances)), tokenizer)
    return model_outputs(model, examples, output, extractor.train.batch_size)


def model_outputs(model: nnx.Module, examples, output: str, batch_size: int) -> np.ndarray:
    """(len(examples), ...) the model's output named `output` for every example, in example order."""
    graph, state = nnx.split(model)

    @jax.jit
    def forward(state, batch):
        return nnx.merge(graph, state)(batch)[output].astype(jnp.float32)

    out = None
    for batch in numpy_batches(examples, batch_size):
        rows = batch.pop("index")
        values = np.asarray(forward(state, batch))
        if out is None:
            out = np.zeros((len(examples), *values.shape[1:]), np.float32)
        out[rows[rows >= 0]] = values[rows >= 0]
    return out


# --- the cache ---


def _cached(config, feature: str, key: dict, compute) -> np.ndarray:
    """`compute()`'s vectors, from ``data.cache_dir`` when an entry with the same key is there."""
    if not config.data.cache_dir:
        return np.asarray(compute(), np.float32)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = pathlib.Path(config.data.cache_dir) / f"utterances-{feature}-{digest}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["vectors"]
    vectors = np.asarray(compute(), np.float32)
    if is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer; the rename is atomic, so no reader ever sees half a file.
        tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp.npz")
        np.savez(tmp, vectors=vectors)
        os.replace(tmp, path)
    return vectors


def _file_stat(path) -> tuple:
    stat = os.stat(path)
    return str(path), stat.st_size, stat.st_mtime_ns


def _folder_stats(name_or_path: str) -> list:
    """Path, size and modification time of a local checkpoint folder's files (a hub id: none)."""
    folder = pathlib.Path(name_or_path)
    return [_file_stat(p) for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
