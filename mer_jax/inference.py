"""Load a trained run (or an exported model) and predict emotions; export a run as a self-contained folder.

    recognizer = EmotionRecognizer.from_run("runs/demo/audio_text")
    recognizer.predict("hello.wav", "I love the new job!")   # -> {"label": ..., "probabilities": {...}}
    export_run("runs/demo/audio_text", "exported/demo")      # then EmotionRecognizer.from_pretrained("exported/demo")

TensorFlow is not needed: batches are built with numpy.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.config import FOLDER_FIELDS, apply_overrides, load_run_config
from mer_jax.data.audio import SAMPLE_RATE, load_audio
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

        recognizer = EmotionRecognizer.from_run("runs/demo/audio_text")  # or .from_pretrained(exported folder)
        recognizer.predict("hello.wav", "I love the new job!")          # {"label": ..., "probabilities": {...}}
        recognizer.predict(waveform, "...", sample_rate=44100)          # an array: any rate, mono or (n, channels)
    """

    def __init__(self, config, tokenizer, split_model: SplitModel, params, other):
        self.config = config
        self.tokenizer = tokenizer
        self.label_set = get_label_set(config.data.label_set)
        self._split, self._params, self._other = split_model, params, other
        self._eval_step = make_eval_step(split_model)
        self._forward = None

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
    def from_pretrained(cls, folder) -> "EmotionRecognizer":
        """A model `export` wrote: needs nothing but the folder (no run, corpus or encoder checkpoint)."""
        from safetensors.numpy import load_file  # noqa: PLC0415
        from transformers import AutoTokenizer  # noqa: PLC0415

        from mer_jax.encoders import from_config, read_config  # noqa: PLC0415

        folder = pathlib.Path(folder)
        if not (folder / WEIGHTS).exists() or not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder}: not an exported model (needs config.json and {WEIGHTS})")
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

    def predict(self, audio: Audio = None, text: str = "", *, sample_rate: int = SAMPLE_RATE,
                attention: bool = False) -> dict:
        """The label and class probabilities of one utterance: `audio` a file or a waveform at
        `sample_rate` (an array), `text` its transcript (what the model does not read is ignored).
        With `attention`, also the fused model's cross-modal attention weights (heads, audio frames,
        tokens) over the utterance's real frames and tokens."""
        examples = self.examples_of_files([(audio, text)], sample_rate=sample_rate)
        probabilities = dict(zip(self.label_set.classes, map(float, self.predict_examples(examples)[0])))
        result = {"label": max(probabilities, key=probabilities.get), "probabilities": probabilities}
        if attention:
            (batch, weights), *_ = self.outputs(examples, "attention")
            (_, audio_mask), *_ = self.outputs(examples, "audio_mask")
            frames, tokens = int(audio_mask[0].sum()), int(batch["attention_mask"][0].sum())
            result["attention"] = weights[0][:, :frames, :tokens]
        return result

    def predict_examples(self, examples: Examples, batch_size: int = 32) -> np.ndarray:
        """Class probabilities of the real utterances of model-ready examples, flattened like
        ``examples.labels()`` and ``examples.utterance_ids()``: (utterances, num_classes)."""
        out = [np.asarray(self._eval_step(self._params, self._other, jax.device_put(batch)))
               for batch in numpy_batches(examples, batch_size)]
        if not out:
            return np.zeros((0, self.label_set.num_classes), np.float32)
        return examples.real(np.concatenate(out)[: len(examples)])

    def predict_files(self, items: list[tuple[Audio, str]], *, sample_rate: int = SAMPLE_RATE) -> list[dict[str, float]]:
        """Probabilities per class for (audio, transcript) pairs (audio: a file, or an array at `sample_rate`).

        A model trained on speaker-normalised MFCCs needs the items to be several utterances of one
        speaker: they are normalised together, as that speaker's frames.
        """
        probabilities = self.predict_examples(self.examples_of_files(items, sample_rate=sample_rate))
        return [dict(zip(self.label_set.classes, map(float, p))) for p in probabilities]

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
            self._forward = jax.jit(lambda params, other, batch, name: self._split.outputs(params, other, batch)[name],
                                    static_argnames="name")
        for batch in numpy_batches(examples, batch_size):
            yield batch, np.asarray(self._forward(self._params, self._other, jax.device_put(batch), name=name))


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
    arrays = {f"params/{n}": np.asarray(a, np.float32) for n, a in zip(_names(recognizer._params),
                                                                       jax.tree.leaves(recognizer._params))}
    arrays |= {f"state/{n}": np.asarray(a) for n, a in zip(_names(recognizer._other), jax.tree.leaves(recognizer._other))}
    save_file(arrays, str(out / WEIGHTS))
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
    (out / "config.json").write_text(exported.to_json(indent=2))
    (out / "README.md").write_text(_model_card(run_dir, config, fold, seeds[run_seeds(config)[seed_index]],
                                               recognizer.label_set.classes))
    return out


def _model_card(run_dir: pathlib.Path, config, fold: dict, seed: dict, classes) -> str:
    test = seed["test"]
    report = (run_dir / "report.txt") if (run_dir / "report.txt").exists() else run_dir.parent / "report.txt"
    return "\n".join([
        "---", "library_name: mer_jax", "tags: [emotion-recognition, speech, text, jax, flax]", "---", "",
        f"# {config.model.name} ({config.model.modalities}) emotion recogniser, exported from `{run_dir}`", "",
        f"Classes: {', '.join(classes)} (label set {config.data.label_set}). Trained on {config.data.corpus} "
        f"(`{config.data.root}`), protocol {fold['protocol']}; checkpoint chosen by validation "
        f"{config.train.select_metric}; seed {seed.get('seed', config.seed)}, best epoch {seed.get('best_epoch', '?')}. "
        f"Text encoder: {config.text.encoder}.", "",
        "| test | WA | UA | weighted F1 | macro F1 |", "|---|---|---|---|---|",
        f"| {fold['sizes']['test']} utterances | {test['wa']:.4f} | {test['ua']:.4f} | {test['weighted_f1']:.4f} | "
        f"{test['macro_f1']:.4f} |", "",
        "```python", "from mer_jax import EmotionRecognizer", "",
        "recognizer = EmotionRecognizer.from_pretrained(\"path/to/this/folder\")",
        "recognizer.predict(\"utterance.wav\", \"its transcript\")  # {'label': ..., 'probabilities': {...}}", "```",
        "", "The run's report:", "", "```", report.read_text().strip() if report.exists() else "(none)", "```", ""])
