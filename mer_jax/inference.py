"""Load a trained run (or an exported model) and predict emotions; export a run as a self-contained folder.

    recognizer = EmotionRecognizer.load("runs/demo/audio_text")  # a run, an exported folder, or a Hub id
    recognizer.predict("hello.wav", "I love the new job!")      # -> {"id": ..., "label": ..., "probabilities": {...}}
    recognizer.predict([("a.wav", "..."), ("b.wav", "...")])     # -> one such dict per item, scored in batches
    export_run("runs/demo/audio_text", "exported/demo")         # then EmotionRecognizer.from_pretrained("exported/demo")
    push_to_hub("exported/demo", "user/mer-jax-demo")           # then EmotionRecognizer.from_pretrained("user/mer-jax-demo")

TensorFlow is not needed: batches are built with numpy.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.config import FOLDER_FIELDS, apply_overrides, load_run_config
from mer_jax.data.audio import AUDIO_SUFFIXES, SAMPLE_RATE, load_audio
from mer_jax.data.examples import Examples, numpy_batches, utterance_examples
from mer_jax.data.features import AudioFeatures, MfccParams, mfcc, normalize_per_speaker
from mer_jax.data.labels import get_label_set, label_set_of
from mer_jax.data.records import Utterance
from mer_jax.errors import ConfigError, InputError
from mer_jax.evaluation.report import summarize_folds, summarize_seeds
from mer_jax.models.registry import build_model, get_model_spec, model_rngs
from mer_jax.training.experiment import load_experiment_data, max_samples
from mer_jax.training.loop import (SIZES, ensemble, load_best, load_best_seeds, prepare_fold_data, read_history,
                                   run_seeds, scored)
from mer_jax.training.steps import SplitModel, make_eval_step
from mer_jax.training.workdir import fold_dir


os.environ.setdefault("USE_TF", "0")

WEIGHTS = "model.safetensors"  # an exported model's parameters ("params/...") and statistics ("state/...")
# What `evaluate_run`'s overrides may change: where the data lives, nothing that made the model.
RELOCATABLE = FOLDER_FIELDS
TEXT_ENCODER = "text_encoder"  # an exported model's pretrained-encoder config (config.json), if it has one
SPEECH_ENCODER = "speech_encoder"  # an exported model's speech-encoder configs, if it has one


Audio = str | os.PathLike | np.ndarray | None  # a file, or a waveform (samples,) or (samples, channels)
Item = tuple[Audio, str] | dict  # (audio, transcript), or {"audio": ..., "text": ..., "id": ...}
# Prediction pads each batch to the smallest of BATCH_SIZES that holds it and its frames, samples and tokens to
# the shortest of these fractions of their full sizes that holds them: short inputs do not pay for the longest,
# and a server compiles at most 3 x 3 shapes.
PREDICTION_BUCKETS = (0.25, 0.5, 1.0)
BATCH_SIZES = (1, 8, 32)


NOT_EXPORTED = f"not an exported model (needs config.json and {WEIGHTS})"


def is_exported_model(folder: pathlib.Path) -> bool:
    """Whether `folder` holds what `export_run` writes and `from_pretrained` reads."""
    return (folder / WEIGHTS).is_file() and (folder / "config.json").is_file()


def _item(item: Item, k: int) -> tuple[str | int, Audio, str]:
    """(id, audio, transcript) of a prediction input: its ``id``, else its audio file's path, else its place."""
    if isinstance(item, dict):
        audio, text, given = item.get("audio"), item.get("text"), item.get("id")
    else:
        (audio, text), given = item, None
    if given is None:
        given = str(audio) if isinstance(audio, str | os.PathLike) else k
    return given, audio, text or ""


def _waveform(audio: Audio, params: MfccParams, sample_rate: int) -> np.ndarray:
    """The 16 kHz mono waveform of a file or an array a model will hear, refused with the reason if unusable."""
    if audio is None or (isinstance(audio, str) and not audio):
        raise InputError("no audio: this model hears audio")
    if isinstance(audio, np.ndarray):
        name = f"a waveform of shape {audio.shape}"
        wave = np.asarray(audio, np.float32)
        if wave.ndim == 2:
            wave = wave.mean(axis=1)  # channels last, as soundfile reads them
        if wave.ndim != 1:
            raise InputError(f"{name}: expected (samples,) or (samples, channels)")
        if not np.isfinite(wave).all():  # before resampling, which fails on them
            raise InputError(f"{name}: {np.count_nonzero(~np.isfinite(wave))} of {len(wave)} audio samples are "
                             "NaN or infinite")
        if sample_rate != SAMPLE_RATE and len(wave):
            import librosa  # noqa: PLC0415

            wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    else:
        name = str(audio)
        if not pathlib.Path(audio).is_file():
            raise InputError(f"{name}: no such audio file")
        try:
            wave = load_audio(audio)
        except ValueError as e:
            raise InputError(str(e)) from None
    if len(wave) < params.win_length:
        raise InputError(f"{name}: {len(wave)} samples at 16 kHz is shorter than one "
                         f"{1000 * params.win_length // SAMPLE_RATE} ms MFCC window")
    if not np.abs(wave).max() > 0:
        raise InputError(f"{name}: the audio is silent (every sample is zero)")
    return wave


def folder_items(folder, transcripts=None) -> list[dict]:
    """Every audio file under `folder` (recursively, sorted) as a prediction item, its id the path relative to
    `folder`; its transcript from `transcripts` (a CSV with columns ``audio``, a path relative to the CSV's
    folder as in a manifest, and ``text``) or else from a ``.txt`` file of the same name beside it (empty when neither has one)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) under it")
    resolved = [path.resolve() for path in files]
    given = {}
    if transcripts is not None:
        rows = manifest_items(transcripts)
        if any(not isinstance(row["audio"], str) for row in rows):
            raise InputError(f"{transcripts}: every row needs an audio column (the file's path under {folder})")
        given = {pathlib.Path(row["audio"]).resolve(): row["text"] for row in rows}
        unknown = sorted(map(str, given.keys() - set(resolved)))
        if unknown:
            raise InputError(f"{transcripts}: names {len(unknown)} file(s) that are not audio under {folder}, "
                             f"e.g. {unknown[0]}")
    items = []
    for path, real in zip(files, resolved):
        sidecar = path.with_suffix(".txt")
        text = given.get(real, sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else "")
        items.append({"id": path.relative_to(folder).as_posix(), "audio": str(path), "text": text})
    return items


def manifest_items(manifest) -> list[dict]:
    """The rows of a CSV with columns ``audio`` (paths relative to the CSV's folder, as in training manifests)
    and/or ``text``, and optionally ``id``, as prediction items (id: the row's, else its place)."""
    import csv  # noqa: PLC0415

    manifest = pathlib.Path(manifest)
    if not manifest.is_file():
        raise InputError(f"{manifest}: no such file")
    with open(manifest, newline="", encoding="utf-8-sig") as f:  # a BOM (Excel's CSVs) is not part of the header
        rows = list(csv.DictReader(f))
    if not rows or not {"audio", "text"} & set(rows[0]):
        raise InputError(f"{manifest}: needs a header with an audio and/or a text column, and rows")
    return [{"id": row.get("id") or k, "audio": str(manifest.parent / row["audio"]) if row.get("audio") else None,
             "text": row.get("text") or ""} for k, row in enumerate(rows)]


def _names(tree) -> list[str]:
    """The path of every array of a state tree, e.g. ``bilstm/recurrence/kernel``."""
    return ["/".join(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _filled(tree, arrays: dict[str, np.ndarray], source):
    """`tree` with every array replaced by the one of the same name; missing, unexpected and mis-shaped names refused."""
    names, leaves, treedef = _names(tree), *jax.tree_util.tree_flatten(tree)
    missing = [n for n in names if n not in arrays]
    unexpected = sorted(set(arrays) - set(names))
    shapes = [f"{n} {arrays[n].shape} (expected {leaf.shape})" for n, leaf in zip(names, leaves)
              if n in arrays and arrays[n].shape != leaf.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{source}: does not fit the model: missing {missing}, unexpected {unexpected}, "
                         f"wrong shape {shapes}")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[n], leaf.dtype) for n, leaf in zip(names, leaves)])


class EmotionRecognizer:
    """A trained model with its tokenizer and label set, ready to score utterances.

        recognizer = EmotionRecognizer.load("runs/demo/audio_text")  # a run, an exported folder or a Hub id
        recognizer.predict("hello.wav", "I love the new job!")      # {"id", "label", "code", "probabilities"}
        recognizer.predict(waveform, "...", sample_rate=44100)      # an array: any rate, mono or (n, channels)
        recognizer.predict([("a.wav", "..."), {"id": "b", "audio": "b.wav", "text": "..."}])  # many, batched
    """

    def __init__(self, config, tokenizer, split_model: SplitModel, params, other):
        self.config = config
        self.tokenizer = tokenizer
        self.label_set = get_label_set(config.data.label_set)
        self.split_model, self.params, self.other = split_model, params, other
        self._eval_step = make_eval_step(split_model)
        self._forward = None

    @property
    def modalities(self) -> tuple[str, ...]:
        """What the model reads: ("audio",), ("text",) or ("audio", "text")."""
        return tuple(get_model_spec(self.config.model.name).modalities(self.config))

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes as people read them, in class order (`label_set.classes` has the corpus' codes)."""
        return self.label_set.class_names

    @classmethod
    def load(cls, name_or_path, *, seed_index: int = 0, revision: str | None = None,
             cache_dir=None) -> "EmotionRecognizer":
        """A trained run or fold folder (its seed `seed_index`), an exported model folder, or the Hub id of an
        exported model (at `revision`, cached under `cache_dir`)."""
        path = pathlib.Path(name_or_path).expanduser()
        if path.is_dir() and not (path / WEIGHTS).exists():
            return cls.from_run(path, seed_index)
        return cls.from_pretrained(name_or_path, revision=revision, cache_dir=cache_dir)

    @staticmethod
    def _check_level(config, source) -> None:
        if get_model_spec(config.model.name).level != "utterance":
            raise ConfigError(f"{source}: {config.model.name} predicts every utterance of a dialogue from utterance "
                              "vectors, not single files; score its corpus with mer-jax evaluate")

    @classmethod
    def from_run(cls, run_dir, seed_index: int = 0) -> "EmotionRecognizer":
        """The best checkpoint of the run (or fold) folder `run_dir` (of its seed number `seed_index`)."""
        from transformers import AutoTokenizer  # noqa: PLC0415

        run_dir = pathlib.Path(run_dir)
        config_path = next((p / "config.json" for p in (run_dir, run_dir.parent) if (p / "config.json").exists()), None)
        if config_path is None or not (run_dir / "checkpoints" / "best").exists():
            raise FileNotFoundError(f"{run_dir}: not a trained run (needs config.json and checkpoints/best)")
        config = load_run_config(config_path)
        cls._check_level(config, run_dir)
        reads_text = "text" in get_model_spec(config.model.name).modalities(config)
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")) if (run_dir / "tokenizer").exists() else None
        split = SplitModel.of(load_best(config, run_dir, seed_index), config.model.dtype)
        if reads_text and tokenizer is None:
            raise FileNotFoundError(f"{run_dir}: the run reads text but has no tokenizer folder")
        return cls(config, tokenizer, split, split.params, split.other)

    @classmethod
    def from_pretrained(cls, name_or_folder, *, revision: str | None = None, cache_dir=None) -> "EmotionRecognizer":
        """A model `export` wrote: a folder, or a Hugging Face Hub id (``user/model``, at `revision`, downloaded
        into or found in `cache_dir`, the Hub's cache by default; ``HF_HUB_OFFLINE=1`` reads the cache only).
        Needs nothing but the folder: no run, corpus or encoder checkpoint."""
        from safetensors.numpy import load_file  # noqa: PLC0415
        from transformers import AutoTokenizer  # noqa: PLC0415

        from mer_jax.encoders import from_config, read_config  # noqa: PLC0415
        from mer_jax.encoders.checkpoint import hub_folder  # noqa: PLC0415

        folder = hub_folder(name_or_folder, revision, cache_dir=cache_dir)
        if not is_exported_model(folder):
            hint = "" if folder == pathlib.Path(name_or_folder).expanduser() else f" (from the Hub's {name_or_folder})"
            raise FileNotFoundError(f"{folder}{hint}: {NOT_EXPORTED}; a trained run folder loads with "
                                    "EmotionRecognizer.from_run or .load")
        config = load_run_config(folder / "config.json")
        cls._check_level(config, folder)
        arrays = load_file(str(folder / WEIGHTS))
        encoder = None
        if (folder / TEXT_ENCODER / "config.json").exists():  # a pretrained encoder, rebuilt from its config
            dtype = config.text.dtype if config.model.dtype == "float32" else config.model.dtype
            encoder = from_config(json.loads((folder / TEXT_ENCODER / "config.json").read_text()), dtype=jnp.dtype(dtype),
                                  rngs=model_rngs(0), add_pooler=any(n.startswith("params/text_encoder/pooler/")
                                                                      for n in arrays), dropout=False)
        speech_encoder = None
        if (folder / SPEECH_ENCODER).is_dir():  # rebuilt from its configs; its weights are in the model's
            config.audio.encoder = str(folder / SPEECH_ENCODER)
            speech_encoder = from_config(read_config(folder / SPEECH_ENCODER), dtype=jnp.dtype(config.model.dtype),
                                         rngs=model_rngs(0), dropout=False)
        sizes = json.loads((folder / SIZES).read_text())
        split = SplitModel.of(build_model(config, sizes, text_encoder=encoder, speech_encoder=speech_encoder),
                              config.model.dtype)
        params = _filled(split.params, {n[len("params/"):]: a for n, a in arrays.items() if n.startswith("params/")},
                         folder / WEIGHTS)
        other = _filled(split.other, {n[len("state/"):]: a for n, a in arrays.items() if n.startswith("state/")},
                        folder / WEIGHTS)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer")) if (folder / "tokenizer").exists() else None
        return cls(config, tokenizer, split, params, other)

    def predict(self, audio: Audio | list[Item] = None, text: str = "", *, sample_rate: int = SAMPLE_RATE,
                attention: bool = False) -> dict | list[dict]:
        """The emotion of one utterance, or of each of a list of items (scored together, in batches of similar
        length): ``{"id", "label", "code", "probabilities"}``, the label and the probabilities' keys readable
        class names, ``code`` the corpus' label code. `audio` is a file or a waveform at `sample_rate` (an array),
        `text` its transcript (what the model does not read is ignored); an item is ``(audio, text)`` or a dict
        with ``audio``, ``text`` and ``id`` (the id defaults to the audio file's path, else the item's place).

        With `attention` (one utterance, the fused dynamic-fusion model), also its cross-modal attention weights
        ``attention`` (heads, audio frames, tokens) over its real frames and tokens, and the ``tokens``.
        """
        many = isinstance(audio, list)
        items = [_item(item, k) for k, item in enumerate(audio if many else [(audio, text)])]
        examples = self.examples_of_files([(a, t) for _, a, t in items], sample_rate=sample_rate)
        results = [{"id": given, "label": self.class_names[p.argmax()], "code": self.label_set.classes[p.argmax()],
                    "probabilities": dict(zip(self.class_names, map(float, p)))}
                   for (given, _, _), p in zip(items, self.predict_examples(examples))]
        if attention:
            from mer_jax.evaluation.attention import attention_of  # noqa: PLC0415

            if many:
                raise ValueError("predict(..., attention=True) takes one utterance")
            (_, results[0]["attention"], results[0]["tokens"]), = attention_of(self, examples)
        return results if many else results[0]

    def predict_examples(self, examples: Examples, batch_size: int = BATCH_SIZES[-1]) -> np.ndarray:
        """Class probabilities of the real utterances of model-ready examples, flattened like
        ``examples.labels()`` and ``examples.utterance_ids()``: (utterances, num_classes). Batches of at most
        `batch_size`, grouped by length (`PREDICTION_BUCKETS`)."""
        if not len(examples):
            return np.zeros((0, self.label_set.num_classes), np.float32)
        shapes = tuple({name: max(1, math.ceil(fraction * size)) for name, size in examples.sizes.items()}
                       for fraction in PREDICTION_BUCKETS)
        examples = examples.with_buckets(shapes)
        size = next((b for b in BATCH_SIZES if b >= len(examples)), batch_size)
        scored = ((np.asarray(self._eval_step(self.params, self.other, jax.device_put(batch)))[None], batch["index"])
                  for batch in numpy_batches(examples, min(size, batch_size)))
        return examples.real(examples.in_order(scored)[0])

    def examples_of_files(self, items: list[tuple[Audio, str]], *, sample_rate: int = SAMPLE_RATE) -> Examples:
        """Model-ready examples of (audio, transcript) pairs, featurised as the run's training was.

        Any sample rate and channel count is taken (mixed to mono, resampled to 16 kHz). What the
        model cannot score raises `InputError` naming the item (and its place, of several): no audio (or a missing, undecodable,
        silent, NaN- or infinity-holding or shorter than one 25 ms window file) for a model that hears
        audio, an empty transcript for one that reads text. An input the model does not read is ignored.
        Each item is read alone: a run trained with ``text.context_turns`` gets no dialogue context here.
        """
        params = MfccParams.from_config(self.config.features)
        modalities = get_model_spec(self.config.model.name).modalities(self.config)
        uses_audio = "audio" in modalities
        waves = []
        for i, (audio, text) in enumerate(items):
            try:
                if "text" in modalities and not (text or "").strip():
                    where = f" for {audio}" if isinstance(audio, str | os.PathLike) else ""
                    raise InputError(f"empty transcript{where}: this model reads text")
                waves.append(_waveform(audio, params, sample_rate) if uses_audio else None)
            except InputError as e:
                raise InputError(f"item {i + 1} of {len(items)}: {e}" if len(items) > 1 else str(e)) from None
        hears_waveforms = uses_audio and self.config.audio.encoder != "mfcc"
        waveforms = AudioFeatures(np.concatenate(waves), np.array([len(w) for w in waves])) if hears_waveforms else None
        frames = [mfcc(wave, params) if uses_audio and not hears_waveforms else np.zeros((0, 0), np.float32)
                  for wave in waves]
        features = AudioFeatures(np.concatenate(frames) if frames else np.zeros((0, 0), np.float32),
                                 np.array([len(f) for f in frames]))
        uses_mfcc = uses_audio and not hears_waveforms
        if uses_mfcc and self.config.features.speaker_normalization:
            features = normalize_per_speaker(features, ["speaker"] * len(items))
        first_class_code = next(iter(self.label_set.code_to_class))  # labels are unknown at prediction time
        utterances = [Utterance(f"input{i}", "input", first_class_code, text,
                                audio if isinstance(audio, str) else None, "unknown", "unknown")
                      for i, (audio, text) in enumerate(items)]
        return utterance_examples(utterances, np.arange(len(items)), self.label_set,
                                  audio=features if uses_mfcc else None, max_frames=self.config.features.max_frames,
                                  waveforms=waveforms, max_samples=max_samples(self.config.features),
                                  tokenizer=self.tokenizer, max_tokens=self.config.features.max_tokens)

    def outputs(self, examples: Examples, name: str, batch_size: int = 32):
        """The model output `name` (e.g. ``attention``) of every example, batch by batch: an iterator of
        (numpy batch, output for its rows), padding rows (index -1) included."""
        if self._forward is None:
            self._forward = jax.jit(lambda params, other, batch, name: self.split_model.outputs(params, other, batch)[name],
                                    static_argnames="name")
        for batch in numpy_batches(examples, batch_size):
            yield batch, np.asarray(self._forward(self.params, self.other, jax.device_put(batch), name=name))


def evaluate_run(run_dir, corpus: dict | None = None, overrides=()) -> dict:
    """Evaluate a finished run's best checkpoint(s) on the test part of its protocol, again; or, with
    `corpus` (``data`` fields: corpus, root, label_map, ...), on every utterance of another corpus,
    its labels mapped onto the run's classes (cross-corpus evaluation; unmapped labels are excluded
    and counted, each fold's model scores the whole corpus). `overrides` (``--config.data.root=...``) say
    where the run's data lives now (`RELOCATABLE` fields only).

    Reads the corpus and rebuilds the splits and examples exactly as the run's saved config did;
    every fold's checkpoint (every seed's) is scored on its own test part. Returns metrics shaped
    like the run's metrics.json.
    """
    run_dir = pathlib.Path(run_dir)
    config = load_run_config(run_dir / "config.json")
    apply_overrides(config, overrides, RELOCATABLE)
    n_folds = sum(1 for path in run_dir.glob("fold*") if path.is_dir() and path.name[4:].isdigit()) or 1
    if corpus:
        trained_on = f"{config.data.corpus} ({config.data.label_set}, protocol {config.split.protocol})"
        config.data.update(corpus)
        config.split.protocol = "cross_corpus"
        try:
            label_set_of(config.data)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if get_model_spec(config.model.name).level != "utterance":
            raise ConfigError(f"{run_dir}: cross-corpus evaluation scores utterance-level models; "
                              f"{config.model.name} reads dialogues of utterance vectors")
    data = load_experiment_data(config)
    folds = []
    splits = data.splits * n_folds if corpus else data.splits  # every fold's model scores the other corpus
    for k, split in enumerate(splits):
        workdir = fold_dir(run_dir, k, len(splits))
        examples = prepare_fold_data(config, data, split, workdir, write=False).examples["test"]
        split_model, params, other = load_best_seeds(config, workdir)
        step = make_eval_step(split_model, seeds=True)
        outputs = examples.in_order((np.asarray(step(params, other, jax.device_put(batch))), batch["index"])
                                    for batch in numpy_batches(examples, config.train.batch_size))
        # seeds dropped in training (diverged) are left out again, as the run's own evaluation left them out
        trained = json.loads((workdir / "fold_metrics.json").read_text()) if (workdir / "fold_metrics.json").exists() else {}
        gone = {d["seed"] for d in trained.get("dropped_seeds", ())}
        kept = [k for k, seed in enumerate(run_seeds(config)) if seed not in gone]
        scores = [scored(examples.real(outputs[k]), examples.labels(), data.label_set) for k in kept]
        per_seed = [metrics for metrics, _ in scores]
        protocol = f"{split.name} of {data.report.corpus}, model trained on {trained_on}" if corpus else split.name
        fold = {"protocol": protocol, "sizes": {"test": len(examples.labels())},
                "history": read_history(workdir, config.train.epochs)}
        if config.train.seeds == 1:
            fold["test"] = per_seed[0]
        else:
            fold["test"] = summarize_seeds(per_seed)
            fold["seeds"] = [{"seed": run_seeds(config)[k], "test": m} for k, m in zip(kept, per_seed)]
            if gone:
                fold["dropped_seeds"] = trained["dropped_seeds"]
            fold["ensemble"] = {"test": ensemble(scores, examples, data.label_set)[0]}
        folds.append(fold)
    results = summarize_folds(folds)
    results["skipped_bad_input"], results["corpus"] = len(data.report.skipped), data.report.corpus
    results["excluded_by_label"] = dict(data.report.excluded_labels)
    return results


def export_run(run_dir, out, seed_index: int | None = None) -> pathlib.Path:
    """Write a self-contained folder that `EmotionRecognizer.from_pretrained` loads: config.json,
    model_sizes.json, the tokenizer, the pretrained text and speech encoders' configs (their weights
    are in the model's), the weights as safetensors (``params/...`` and ``state/...``, float32) and a model card
    README.md with the run's metrics and protocol, in the Hugging Face Hub's folder conventions.

    `run_dir` is a run, or one fold of a cross-validation (``RUN/fold3``); `seed_index` picks one of
    several seeds (default: the one with the best validation score).
    """
    from safetensors.numpy import save_file  # noqa: PLC0415

    from mer_jax.encoders import save_configs  # noqa: PLC0415

    run_dir, out = pathlib.Path(run_dir), pathlib.Path(out)
    fold = json.loads((run_dir / "fold_metrics.json").read_text()) if (run_dir / "fold_metrics.json").exists() else {}
    config_path = next((p / "config.json" for p in (run_dir, run_dir.parent) if (p / "config.json").exists()), None)
    if config_path is None or not fold:
        raise FileNotFoundError(f"{run_dir}: not a finished run or fold (needs config.json and fold_metrics.json); "
                                "for a cross-validation pass one fold, e.g. RUN/fold0")
    config = load_run_config(config_path)
    # the seeds that trained to the end, by seed number (a seed dropped for diverging has no test entry)
    seeds = {s.get("seed", config.seed): s for s in fold.get("seeds", [fold])}
    dropped = {d["seed"]: d for d in fold.get("dropped_seeds", ())}
    if seed_index is None:
        seed_index = run_seeds(config).index(max(seeds, key=lambda s: seeds[s]["validation"][config.train.select_metric]))
    elif not 0 <= seed_index < config.train.seeds:
        raise InputError(f"{run_dir}: --seed_index={seed_index}, but the run trained {config.train.seeds} seed(s): "
                         f"0 to {config.train.seeds - 1}")
    elif run_seeds(config)[seed_index] in dropped:
        d = dropped[run_seeds(config)[seed_index]]
        raise InputError(f"{run_dir}: --seed_index={seed_index} is seed {d['seed']}, dropped when its training "
                         f"diverged at epoch {d['epoch']}, step {d['step']}: pick another seed")
    recognizer = EmotionRecognizer.from_run(run_dir, seed_index)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"params/{n}": np.asarray(a, np.float32) for n, a in zip(_names(recognizer.params),
                                                                       jax.tree.leaves(recognizer.params))}
    arrays |= {f"state/{n}": np.asarray(a) for n, a in zip(_names(recognizer.other), jax.tree.leaves(recognizer.other))}
    save_file(arrays, str(out / WEIGHTS))
    (out / WEIGHTS).chmod(0o644)  # safetensors writes through a private temporary file; others may read the model
    shutil.copy(run_dir / SIZES, out / SIZES)
    if recognizer.tokenizer is not None:
        recognizer.tokenizer.save_pretrained(str(out / "tokenizer"))
    exported = load_run_config(config_path)
    modalities = get_model_spec(config.model.name).modalities(config)
    if "text" in modalities and config.text.encoder != "transformer":
        save_configs(config.text.encoder, out / TEXT_ENCODER)
        exported.text.encoder = TEXT_ENCODER  # rebuilt from this config; its weights are in model.safetensors
    if "audio" in modalities and config.audio.encoder != "mfcc":
        save_configs(config.audio.encoder, out / SPEECH_ENCODER)
        exported.audio.encoder = SPEECH_ENCODER  # rebuilt from these configs; its weights are in model.safetensors
    names = recognizer.class_names  # the Hub's label maps beside the run config (load_run_config skips them)
    hub_labels = {"id2label": dict(enumerate(names)), "label2id": {name: k for k, name in enumerate(names)}}
    (out / "config.json").write_text(json.dumps({**json.loads(exported.to_json()), **hub_labels}, indent=2))
    (out / "README.md").write_text(_model_card(run_dir, config, fold, seeds[run_seeds(config)[seed_index]], names))
    return out


def push_to_hub(folder, repo_id: str, *, private: bool = False, token: str | None = None,
                revision: str | None = None) -> str:
    """Upload an exported model folder to the Hugging Face Hub as the model `repo_id` (created if it does not
    exist; `token` defaults to ``huggingface-cli login``'s); returns the commit's URL. Then anyone loads it with
    ``EmotionRecognizer.from_pretrained(repo_id)``."""
    from huggingface_hub import HfApi  # noqa: PLC0415

    folder = pathlib.Path(folder)
    if not is_exported_model(folder):
        raise FileNotFoundError(f"{folder}: {NOT_EXPORTED}; write one with mer-jax export")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                                 commit_message="Upload a mer_jax emotion recogniser"))


LICENSE = "apache-2.0"  # mer_jax's own; a model trained on a licensed corpus may carry that corpus' terms too
CORPUS_CARDS = {  # data.corpus -> (what the card calls it, its Hub dataset id when it has one)
    "iemocap": ("IEMOCAP (USC SAIL; licence-restricted)", None),
    "emodb": ("EmoDB (Berlin Database of Emotional Speech)", None),
    "ravdess": ("RAVDESS", None),
    "cremad": ("CREMA-D", None),
    "meld": ("MELD", "declare-lab/MELD"),
}


def _model_card(run_dir: pathlib.Path, config, fold: dict, seed: dict, class_names) -> str:
    """README.md in the Hub's model-card format: metadata (license, datasets, metrics, pipeline tag, the
    model-index with this model's test numbers and protocol), then intended use, limitations and how to load."""
    import yaml  # noqa: PLC0415

    from mer_jax.data.demo import is_demo_corpus  # noqa: PLC0415

    test, protocol = seed["test"], fold["protocol"]
    demo = config.data.corpus == "iemocap" and is_demo_corpus(config.data.root)
    corpus, dataset = (("mer_jax's synthetic demo corpus (IEMOCAP's folder layout, generated audio and template "
                        "sentences; NOT IEMOCAP)", None) if demo else CORPUS_CARDS.get(config.data.corpus,
                                                                                        (config.data.corpus, None)))
    title = f"{config.model.name} ({config.model.modalities}) emotion recogniser"
    metrics = [("accuracy", "wa", "WA (weighted accuracy)"), ("recall", "ua", "UA (unweighted accuracy)"),
               ("f1", "weighted_f1", "weighted F1"), ("f1", "macro_f1", "macro F1")]
    metadata = {
        "library_name": "mer_jax", "license": LICENSE, "pipeline_tag": "audio-classification",
        "tags": ["emotion-recognition", "speech-emotion-recognition", "multimodal", "jax", "flax"],
        **({"datasets": [dataset]} if dataset else {}),
        "metrics": sorted({kind for kind, _, _ in metrics}),
        "model-index": [{"name": title, "results": [{
            "task": {"type": "audio-classification", "name": f"emotion recognition ({config.model.modalities})"},
            "dataset": {"type": dataset or config.data.corpus, "name": corpus,
                        "split": f"test: {protocol}"},
            "metrics": [{"type": kind, "value": round(float(test[key]), 4), "name": name}
                        for kind, key, name in metrics]}]}],
    }
    report = (run_dir / "report.txt") if (run_dir / "report.txt").exists() else run_dir.parent / "report.txt"
    reads = {"audio": "speech", "text": "its transcript", "audio+text": "speech and its transcript"}[config.model.modalities]
    return "\n".join([
        "---", yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip(), "---", "",
        f"# {title}", "",
        f"Reads {reads} and says which of {len(class_names)} emotions it expresses: {', '.join(class_names)} "
        f"(label set {config.data.label_set}). Trained with [mer_jax](https://github.com/mer-jax/mer_jax) on "
        f"{corpus}, protocol {protocol}; checkpoint chosen by validation {config.train.select_metric}; "
        f"seed {seed.get('seed', config.seed)}, best epoch {seed.get('best_epoch', '?')}. "
        f"Text encoder: {config.text.encoder}; audio: {config.audio.encoder}.", "",
        "| test | WA | UA | weighted F1 | macro F1 |", "|---|---|---|---|---|",
        f"| {fold['sizes']['test']} utterances | {test['wa']:.4f} | {test['ua']:.4f} | {test['weighted_f1']:.4f} | "
        f"{test['macro_f1']:.4f} |", "",
        "## Intended use and limitations", "",
        "For research on emotion recognition from speech and text: scoring utterances like those it was trained "
        "on. Its numbers hold for its training corpus and protocol only: acted or scripted speech, one language, "
        "a handful of speakers; expect lower accuracy on other speakers, languages, microphones and spontaneous "
        "speech, and on transcripts from a speech recogniser where it was trained on gold ones. Emotion labels "
        "are annotators' judgements, not what a speaker felt; do not use it to make decisions about people."
        + (" This model was trained on synthetic data: it demonstrates the tools and recognises nothing real."
           if demo else ""), "",
        "## How to use", "",
        "```python", "from mer_jax import EmotionRecognizer", "",
        "recognizer = EmotionRecognizer.from_pretrained(\"path/or/hub-id\")",
        "recognizer.predict(\"utterance.wav\", \"its transcript\")  # {'label': ..., 'probabilities': {...}, ...}",
        "```", "",
        "or `mer-jax predict --workdir=path/to/this/folder --audio=utterance.wav --text=\"...\"`, "
        "`mer-jax serve --model=path/to/this/folder`.", "",
        "## The run's report", "", "```", report.read_text().strip() if report.exists() else "(none)", "```", ""])
