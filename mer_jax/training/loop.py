"""The training loop: corpus -> features -> folds -> train with validation selection -> test once.

For each fold of the protocol: prepare the fold's data (tokenizer fitted on the training part,
examples), build the trainable state (model, optimiser, sharded state, steps), run the epochs
(checkpointing the latest state, and the best model by the validation metric), then restore the
best model, evaluate the test part once and write the fold's outputs. A run that finds a latest
checkpoint in its workdir resumes from it and ends exactly where an uninterrupted run would.
Writes, per run (process 0 only): config.json, metrics.json, report.txt, test predictions,
TensorBoard events.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

from mer_jax.config import validate
from mer_jax.data.examples import Examples
from mer_jax.data.labels import LabelSet
from mer_jax.data.splits import Split
from mer_jax.data.tokenizer import get_tokenizer, tokenizer_name
from mer_jax.evaluation.metrics import classification_metrics
from mer_jax.evaluation.report import format_report, summarize_folds
from mer_jax.models.registry import build_model, get_model_spec
from mer_jax.training import sharding
from mer_jax.training.checkpoints import RunCheckpoints
from mer_jax.training.experiment import ExperimentData, examples_of, load_experiment_data
from mer_jax.training.objectives import make_objective
from mer_jax.training.optimizer import make_optimizer, parameter_groups
from mer_jax.training.steps import SplitModel, make_eval_step, make_train_step
from mer_jax.training.workdir import fold_dir, is_writer, prepare_workdir

PARTS = ("train", "validation", "test")


def train_and_evaluate(config, workdir, *, restart: bool = False) -> dict:
    """Run every fold of config's protocol in `workdir`; return (and write) the metrics."""
    validate(config)
    workdir = prepare_workdir(config, workdir, restart=restart)
    data = load_experiment_data(config)
    print(data.report.summary())
    folds = [train_fold(config, data, split, fold_dir(workdir, k, len(data.splits)))
             for k, split in enumerate(data.splits)]
    results = summarize_folds(folds)
    results["skipped_bad_input"] = len(data.report.skipped)
    results["corpus"] = data.report.corpus
    report = format_report(results, config)
    if is_writer():
        (workdir / "metrics.json").write_text(json.dumps(results, indent=2))
        (workdir / "report.txt").write_text(report + "\n")
    print(report)
    return results


@dataclasses.dataclass(frozen=True)
class FoldData:
    examples: dict[str, Examples]  # train / validation / test
    label_set: LabelSet
    vocab_size: int  # of the fold's tokenizer (0 when the model reads no text)


def prepare_fold_data(config, data: ExperimentData, split: Split, workdir: pathlib.Path) -> FoldData:
    """The fold's examples; a tokenizer (fitted on the training transcripts where it is a word
    vocabulary) is saved with the fold, so inference tokenizes exactly as training did."""
    tokenizer = None
    if "text" in get_model_spec(config.model.name).modalities(config):
        tokenizer = get_tokenizer(tokenizer_name(config.text), [data.utterances[i].transcript for i in split.train])
        if is_writer():
            tokenizer.save_pretrained(str(workdir / "tokenizer"))
    examples = {part: examples_of(config, data, getattr(split, part), tokenizer) for part in PARTS}
    return FoldData(examples, data.label_set, len(tokenizer) if tokenizer is not None else 0)


@dataclasses.dataclass
class Trainable:
    """A model ready for the jitted steps: its split form, steps, mesh, and the state that a checkpoint holds."""

    split: SplitModel
    train_step: object
    eval_step: object
    mesh: object
    steps_per_epoch: int
    state: dict  # params, other, opt_state, epoch, best, best_epoch


def build_trainable(config, fold: FoldData) -> Trainable:
    """Model (with its data-dependent preparation), optimiser and replicated state, and the steps."""
    model = build_model(config, fold.label_set.num_classes, fold.vocab_size)
    model.prepare(fold.examples["train"])
    split = SplitModel.of(model)
    groups = parameter_groups(split.params, model.encoder_modules)
    steps_per_epoch = len(fold.examples["train"]) // config.train.batch_size
    optimizer = make_optimizer(config.train, steps_per_epoch * config.train.epochs, groups)
    mesh = sharding.data_mesh()
    params, other = sharding.replicate((split.params, split.other), mesh)
    train_step = make_train_step(split, optimizer, make_objective(config.objective),
                                 frozen=groups if config.train.freeze_encoder else None)
    state = loop_state(params, other, jax.jit(optimizer.init)(params), epoch=0, best=-1.0, best_epoch=0)
    return Trainable(split, train_step, make_eval_step(split), mesh, steps_per_epoch, state)


def loop_state(params, other, opt_state, epoch: int, best: float, best_epoch: int) -> dict:
    """Everything a resumed run needs: model and optimiser state, epochs done, the best validation score."""
    return {"params": params, "other": other, "opt_state": opt_state, "epoch": np.array(epoch, np.int32),
            "best": np.array(best, np.float32), "best_epoch": np.array(best_epoch, np.int32)}


def _feed() -> dict:
    return dict(process_index=jax.process_index(), process_count=jax.process_count())


def predict(trainable: Trainable, params, other, examples: Examples, batch_size: int) -> np.ndarray:
    """Class probabilities of every example, shaped like its padded labels plus classes ((n, C) or (n, U, C)).

    Every process feeds its share of each global batch; the outputs are gathered from all processes
    and put back in example order by the index each example carries.
    """
    from mer_jax.data.pipeline import batches  # noqa: PLC0415 (TensorFlow only where data is fed)

    outputs, indices = [], []
    for local in batches(examples, global_batch_size=batch_size, train=False, **_feed()):
        batch = sharding.global_batch(local, trainable.mesh)
        outputs.append(sharding.gather(trainable.eval_step(params, other, batch)))
        indices.append(sharding.gather(batch["index"]))
    outputs, indices = np.concatenate(outputs), np.concatenate(indices)
    out = np.zeros((len(examples), *outputs.shape[1:]), np.float32)
    out[indices[indices >= 0]] = outputs[indices >= 0]
    return out


def score(trainable: Trainable, params, other, examples: Examples, config, label_set) -> tuple[dict, np.ndarray]:
    """Metrics over the real utterances of `examples`, and their probabilities (flattened like `labels`)."""
    probabilities = examples.real(predict(trainable, params, other, examples, config.train.batch_size))
    return classification_metrics(examples.labels(), probabilities.argmax(-1), label_set.classes), probabilities


def run_epochs(config, fold: FoldData, trainable: Trainable, checkpoints: RunCheckpoints, workdir) -> dict:
    """Train to ``train.epochs`` (from the latest checkpoint, if any), keeping the best model by validation."""
    from mer_jax.data.pipeline import batches  # noqa: PLC0415

    tc = config.train
    restored = checkpoints.restore_latest(trainable.state)
    if restored is not None:
        trainable.state = restored
        print(f"resuming {workdir} after epoch {int(restored['epoch'])}")
    state = trainable.state
    params, other, opt_state = state["params"], state["other"], state["opt_state"]
    start, best, best_epoch = int(state["epoch"]), float(state["best"]), int(state["best_epoch"])
    writer = SummaryWriter(str(workdir / "tensorboard"), write_to_disk=is_writer())
    base_key = jax.random.key(config.seed)
    steps = trainable.steps_per_epoch
    for epoch in tqdm(range(start, tc.epochs), desc=f"training {workdir.name}", unit="epoch", initial=start,
                      total=tc.epochs, disable=not is_writer()):
        for i, local in enumerate(batches(fold.examples["train"], global_batch_size=tc.batch_size, train=True,
                                          seed=config.seed, epoch=epoch, **_feed())):
            step = epoch * steps + i
            params, other, opt_state, measured = trainable.train_step(
                params, other, opt_state, sharding.global_batch(local, trainable.mesh), jax.random.fold_in(base_key, step))
            if step % tc.log_every_steps == 0:
                for name, value in jax.device_get(measured).items():
                    writer.add_scalar(f"train/{name}", float(value), step)
        validation, _ = score(trainable, params, other, fold.examples["validation"], config, fold.label_set)
        for name in ("wa", "ua", "weighted_f1", "macro_f1"):
            writer.add_scalar(f"validation/{name}", validation[name], (epoch + 1) * steps)
        if validation[tc.select_metric] > best:
            best, best_epoch = validation[tc.select_metric], epoch + 1
            checkpoints.save_best(best_epoch, {"params": params, "other": other})
        if (epoch + 1) % tc.checkpoint_every_epochs == 0 or epoch + 1 == tc.epochs:
            checkpoints.save_latest(epoch + 1, loop_state(params, other, opt_state, epoch + 1, best, best_epoch))
    writer.close()
    trainable.state = loop_state(params, other, opt_state, tc.epochs, best, best_epoch)
    return trainable.state


def evaluate_and_write(config, fold: FoldData, trainable: Trainable, checkpoints: RunCheckpoints, split: Split,
                       workdir: pathlib.Path) -> dict:
    """Restore the best model, score the test part once (and validation again), write the fold's files."""
    state = trainable.state
    best = checkpoints.restore_best({"params": state["params"], "other": state["other"]})
    test, probabilities = score(trainable, best["params"], best["other"], fold.examples["test"], config, fold.label_set)
    validation, _ = score(trainable, best["params"], best["other"], fold.examples["validation"], config, fold.label_set)
    result = {"protocol": split.name, "best_epoch": int(state["best_epoch"]), "validation": validation, "test": test,
              "sizes": {part: int(len(fold.examples[part].labels())) for part in PARTS}}
    if is_writer():
        write_predictions(workdir / "test_predictions.csv", fold.examples["test"], probabilities,
                          fold.label_set.classes)
        (workdir / "fold_metrics.json").write_text(json.dumps(result, indent=2))
    return result


def train_fold(config, data: ExperimentData, split: Split, workdir: pathlib.Path) -> dict:
    """Train on split.train, select on split.validation, evaluate split.test once."""
    if is_writer():
        workdir.mkdir(parents=True, exist_ok=True)
    fold = prepare_fold_data(config, data, split, workdir)
    trainable = build_trainable(config, fold)
    checkpoints = RunCheckpoints(workdir)
    run_epochs(config, fold, trainable, checkpoints, workdir)
    result = evaluate_and_write(config, fold, trainable, checkpoints, split, workdir)
    checkpoints.close()
    return result


def write_predictions(path, examples: Examples, probabilities: np.ndarray, classes) -> None:
    """One line per real utterance: id, true label, predicted label, class probabilities."""
    lines = ["utterance_id,label,prediction," + ",".join(f"p_{c}" for c in classes)]
    for uid, label, p in zip(examples.utterance_ids(), examples.labels(), probabilities):
        lines.append(f"{uid},{classes[label]},{classes[p.argmax()]}," + ",".join(f"{x:.5f}" for x in p))
    path.write_text("\n".join(lines) + "\n")
