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
from flax import nnx

from mer_jax.config import load_run_config
from mer_jax.data.audio import load_audio
from mer_jax.data.examples import Examples, make_examples
from mer_jax.data.experiment import fold_dir, load_experiment_data
from mer_jax.data.features import AudioFeatures, MfccParams, mfcc, normalize_per_speaker
from mer_jax.data.labels import get_label_set
from mer_jax.data.records import Utterance
from mer_jax.evaluation.metrics import classification_metrics
from mer_jax.evaluation.report import summarize_folds
from mer_jax.models.registry import build_model
from mer_jax.training.checkpoints import RunCheckpoints
from mer_jax.training.steps import SplitModel, make_eval_step

os.environ.setdefault("USE_TF", "0")


class Predictor:
    """A trained model with its tokenizer and label set, ready to score utterances."""

    def __init__(self, config, tokenizer, split_model: SplitModel, params, other):
        self.config = config
        self.tokenizer = tokenizer
        self.label_set = get_label_set(config.data.label_set)
        self._split, self._params, self._other = split_model, params, other
        self._eval_step = make_eval_step(split_model)

    @classmethod
    def load(cls, run_dir) -> "Predictor":
        """The best checkpoint of the run (or fold) folder `run_dir`."""
        from transformers import AutoTokenizer  # noqa: PLC0415

        run_dir = pathlib.Path(run_dir)
        config_path = next((p / "config.json" for p in (run_dir, run_dir.parent) if (p / "config.json").exists()), None)
        if config_path is None or not (run_dir / "checkpoints" / "best").exists():
            raise FileNotFoundError(f"{run_dir}: not a trained run (needs config.json and checkpoints/best)")
        config = load_run_config(config_path)
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
        label_set = get_label_set(config.data.label_set)
        model = build_model(config, label_set.num_classes, len(tokenizer), nnx.Rngs(config.seed))
        split = SplitModel.of(model)
        checkpoints = RunCheckpoints(run_dir)
        state = checkpoints.restore_best({"params": split.params, "other": split.other})
        checkpoints.close()
        return cls(config, tokenizer, split, state["params"], state["other"])

    def predict_examples(self, examples: Examples, batch_size: int = 32) -> np.ndarray:
        """Class probabilities (n, num_classes) of model-ready examples."""
        padded = examples.padded(self.config.features.max_frames)
        out = []
        for start in range(0, len(examples), batch_size):
            batch = {k: v[start: start + batch_size] for k, v in padded.items()}
            out.append(np.asarray(self._eval_step(self._params, self._other, jax.device_put(batch))))
        return np.concatenate(out) if out else np.zeros((0, self.label_set.num_classes), np.float32)

    def predict_files(self, items: list[tuple[str | None, str]]) -> list[dict[str, float]]:
        """Probabilities per class for (audio path, transcript) pairs.

        A model trained on speaker-normalised MFCCs needs the items to be several utterances of one
        speaker: they are normalised together, as that speaker's frames.
        """
        params = MfccParams.from_config(self.config.features)
        uses_audio = "audio" in self.config.model.modalities
        frames = [mfcc(load_audio(path), params) if uses_audio else np.zeros((0, 0), np.float32)
                  for path, _ in items]
        audio = AudioFeatures(np.concatenate(frames) if frames else np.zeros((0, 0), np.float32),
                              np.array([len(f) for f in frames]))
        if uses_audio and self.config.features.speaker_normalization:
            audio = normalize_per_speaker(audio, ["speaker"] * len(items))
        first_class_code = next(iter(self.label_set.code_to_class))  # labels are unknown at prediction time
        utterances = [Utterance(f"input{i}", "input", first_class_code, text, path, "unknown", "unknown")
                      for i, (path, text) in enumerate(items)]
        examples = make_examples(utterances, np.arange(len(items)), audio, self.tokenizer, self.label_set,
                                 self.config.features.max_tokens)
        probabilities = self.predict_examples(examples)
        return [dict(zip(self.label_set.classes, map(float, p))) for p in probabilities]


def evaluate_run(run_dir) -> dict:
    """Evaluate a finished run's best checkpoint(s) on the test part of its protocol, again.

    Reads the corpus and rebuilds the splits exactly as the run's saved config did; every fold's
    checkpoint is scored on its own test speakers. Returns metrics shaped like the run's metrics.json.
    """
    run_dir = pathlib.Path(run_dir)
    config = load_run_config(run_dir / "config.json")
    data = load_experiment_data(config)
    folds = []
    for k, split in enumerate(data.splits):
        predictor = Predictor.load(fold_dir(run_dir, k, len(data.splits)))
        examples = make_examples(data.utterances, split.test, data.audio, predictor.tokenizer, predictor.label_set,
                                 config.features.max_tokens)
        predictions = predictor.predict_examples(examples).argmax(-1)
        folds.append({"protocol": split.name, "sizes": {"test": len(examples)},
                      "test": classification_metrics(examples.labels, predictions, predictor.label_set.classes)})
    results = summarize_folds(folds)
    results["skipped_bad_input"], results["corpus"] = len(data.report.skipped), data.report.corpus
    return results