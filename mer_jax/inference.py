"""Load a trained run (its config, tokenizer and best checkpoint) and predict emotions.

    predictor = Predictor.load("runs/demo/fused")
    predictor.predict_files([("hello.wav", "I love the new job!")])   # -> list of {label: probability}

TensorFlow is not needed: batches are built with numpy.
"""

from __future__ import annotations

import os
import pathlib

import jax
import numpy as np

from mer_jax.config import ConfigError, load_run_config
from mer_jax.data.audio import load_audio
from mer_jax.data.examples import Examples, numpy_batches, utterance_examples
from mer_jax.data.features import AudioFeatures, MfccParams, mfcc, normalize_per_speaker
from mer_jax.data.labels import get_label_set
from mer_jax.data.records import Utterance
from mer_jax.evaluation.metrics import classification_metrics
from mer_jax.evaluation.report import summarize_folds, summarize_seeds
from mer_jax.models.registry import get_model_spec
from mer_jax.training.experiment import load_experiment_data
from mer_jax.training.loop import load_best, load_best_seeds, prepare_fold_data, read_history, run_seeds
from mer_jax.training.steps import SplitModel, make_eval_step
from mer_jax.training.workdir import fold_dir


class InputError(ValueError):
    """An input that no model can score (missing or unreadable audio, an empty transcript)."""


def _waveform(path, params: MfccParams) -> np.ndarray:
    """The 16 kHz mono waveform of an audio file a model will hear, refused with the reason if unusable."""
    if not path:
        raise InputError("no audio: this run's model hears audio")
    if not pathlib.Path(path).is_file():
        raise InputError(f"{path}: no such audio file")
    try:
        wave = load_audio(path)
    except ValueError as e:
        raise InputError(str(e)) from None
    if len(wave) < params.win_length:
        raise InputError(f"{path}: {len(wave)} samples at 16 kHz is shorter than one "
                         f"{1000 * params.win_length // 16000} ms MFCC window")
    if not np.abs(wave).max() > 0:
        raise InputError(f"{path}: the audio is silent (every sample is zero)")
    return wave

os.environ.setdefault("USE_TF", "0")


class Predictor:
    """A trained model with its tokenizer and label set, ready to score utterances."""

    def __init__(self, config, tokenizer, split_model: SplitModel, params, other):
        self.config = config
        self.tokenizer = tokenizer
        self.label_set = get_label_set(config.data.label_set)
        self._split, self._params, self._other = split_model, params, other
        self._eval_step = make_eval_step(split_model)
        self._forward = None

    @classmethod
    def load(cls, run_dir, seed_index: int = 0) -> "Predictor":
        """The best checkpoint of the run (or fold) folder `run_dir` (of its seed number `seed_index`)."""
        from transformers import AutoTokenizer  # noqa: PLC0415

        run_dir = pathlib.Path(run_dir)
        config_path = next((p / "config.json" for p in (run_dir, run_dir.parent) if (p / "config.json").exists()), None)
        if config_path is None or not (run_dir / "checkpoints" / "best").exists():
            raise FileNotFoundError(f"{run_dir}: not a trained run (needs config.json and checkpoints/best)")
        config = load_run_config(config_path)
        if get_model_spec(config.model.name).level != "utterance":
            raise ConfigError(f"{run_dir}: {config.model.name} predicts every utterance of a dialogue from utterance "
                              "vectors, not single files; score its corpus with mer-jax evaluate")
        reads_text = "text" in get_model_spec(config.model.name).modalities(config)
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")) if (run_dir / "tokenizer").exists() else None
        split = SplitModel.of(load_best(config, run_dir, seed_index), config.model.dtype)
        if reads_text and tokenizer is None:
            raise FileNotFoundError(f"{run_dir}: the run reads text but has no tokenizer folder")
        return cls(config, tokenizer, split, split.params, split.other)

    def predict_examples(self, examples: Examples, batch_size: int = 32) -> np.ndarray:
        """Class probabilities of the real utterances of model-ready examples, flattened like
        ``examples.labels()`` and ``examples.utterance_ids()``: (utterances, num_classes)."""
        out = [np.asarray(self._eval_step(self._params, self._other, jax.device_put(batch)))
               for batch in numpy_batches(examples, batch_size)]
        if not out:
            return np.zeros((0, self.label_set.num_classes), np.float32)
        return examples.real(np.concatenate(out)[: len(examples)])

    def predict_files(self, items: list[tuple[str | None, str]]) -> list[dict[str, float]]:
        """Probabilities per class for (audio path, transcript) pairs.

        A model trained on speaker-normalised MFCCs needs the items to be several utterances of one
        speaker: they are normalised together, as that speaker's frames.
        """
        probabilities = self.predict_examples(self.examples_of_files(items))
        return [dict(zip(self.label_set.classes, map(float, p))) for p in probabilities]

    def examples_of_files(self, items: list[tuple[str | None, str]]) -> Examples:
        """Model-ready examples of (audio path, transcript) pairs, featurised as the run's training was.

        Any sample rate and channel count is taken (mixed to mono, resampled to 16 kHz). What the
        model cannot score raises `InputError` naming the item: no audio (or a missing, undecodable,
        silent or shorter than one 25 ms window file) for a model that hears audio, an empty
        transcript for one that reads text. An input the model does not read is ignored.
        """
        params = MfccParams.from_config(self.config.features)
        modalities = get_model_spec(self.config.model.name).modalities(self.config)
        uses_audio = "audio" in modalities
        for path, text in items:
            if "text" in modalities and not (text or "").strip():
                raise InputError(f"empty transcript{f' for {path}' if path else ''}: this run's model reads text")
        frames = [mfcc(_waveform(path, params), params) if uses_audio else np.zeros((0, 0), np.float32)
                  for path, _ in items]
        audio = AudioFeatures(np.concatenate(frames) if frames else np.zeros((0, 0), np.float32),
                              np.array([len(f) for f in frames]))
        if uses_audio and self.config.features.speaker_normalization:
            audio = normalize_per_speaker(audio, ["speaker"] * len(items))
        first_class_code = next(iter(self.label_set.code_to_class))  # labels are unknown at prediction time
        utterances = [Utterance(f"input{i}", "input", first_class_code, text, path, "unknown", "unknown")
                      for i, (path, text) in enumerate(items)]
        return utterance_examples(utterances, np.arange(len(items)), self.label_set,
                                  audio=audio if uses_audio else None, max_frames=self.config.features.max_frames,
                                  tokenizer=self.tokenizer, max_tokens=self.config.features.max_tokens)

    def outputs(self, examples: Examples, name: str, batch_size: int = 32):
        """The model output `name` (e.g. ``attention``) of every example, batch by batch: an iterator of
        (numpy batch, output for its rows), padding rows (index -1) included."""
        if self._forward is None:
            self._forward = jax.jit(lambda params, other, batch, name: self._split.outputs(params, other, batch)[name],
                                    static_argnames="name")
        for batch in numpy_batches(examples, batch_size):
            yield batch, np.asarray(self._forward(self._params, self._other, jax.device_put(batch), name=name))


def evaluate_run(run_dir) -> dict:
    """Evaluate a finished run's best checkpoint(s) on the test part of its protocol, again.

    Reads the corpus and rebuilds the splits and examples exactly as the run's saved config did;
    every fold's checkpoint (every seed's) is scored on its own test part. Returns metrics shaped
    like the run's metrics.json.
    """
    run_dir = pathlib.Path(run_dir)
    config = load_run_config(run_dir / "config.json")
    data = load_experiment_data(config)
    folds = []
    for k, split in enumerate(data.splits):
        workdir = fold_dir(run_dir, k, len(data.splits))
        examples = prepare_fold_data(config, data, split, workdir, write=False).examples["test"]
        split_model, params, other = load_best_seeds(config, workdir)
        step = make_eval_step(split_model, seeds=True)
        outputs = np.concatenate([np.asarray(step(params, other, jax.device_put(batch)))
                                  for batch in numpy_batches(examples, config.train.batch_size)], axis=1)
        per_seed = [classification_metrics(examples.labels(), examples.real(o[: len(examples)]).argmax(-1),
                                           data.label_set.classes) for o in outputs]
        fold = {"protocol": split.name, "sizes": {"test": len(examples.labels())},
                "history": read_history(workdir, config.train.epochs)}
        if len(per_seed) == 1:
            fold["test"] = per_seed[0]
        else:
            fold["test"] = summarize_seeds(per_seed)
            fold["seeds"] = [{"seed": seed, "test": m} for seed, m in zip(run_seeds(config), per_seed)]
        folds.append(fold)
    results = summarize_folds(folds)
    results["skipped_bad_input"], results["corpus"] = len(data.report.skipped), data.report.corpus
    return results
