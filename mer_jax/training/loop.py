"""The training loop: corpus -> features -> folds -> train with validation selection -> test once.

For each fold of the protocol: prepare the fold's data (tokenizer fitted on the training part,
examples), build the trainable state (model, optimiser, sharded state, steps), run the epochs
(checkpointing the latest state, and the best model by the validation metric), then restore the
best model, evaluate the test part once and write the fold's outputs. A run that finds a latest
checkpoint in its workdir resumes from it and ends exactly where an uninterrupted run would.
Writes, per run (process 0 only): config.json, metrics.json, report.txt, report.md with the confusion
matrix and training curves as PNG, test predictions, TensorBoard events.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tensorboardX import SummaryWriter

from mer_jax.config import validate
from mer_jax.data.examples import Examples, length_buckets
from mer_jax.data.labels import LabelSet
from mer_jax.data.splits import Split
from mer_jax.data.tokenizer import get_tokenizer, tokenizer_name
from mer_jax.errors import ConfigError
from mer_jax.evaluation.metrics import classification_metrics
from mer_jax.evaluation.plots import write_report_files
from mer_jax.evaluation.report import format_report, summarize_folds, summarize_seeds
from mer_jax.models.registry import build_model, get_model_spec
from mer_jax.training import sharding
from mer_jax.training.checkpoints import RunCheckpoints
from mer_jax.training.divergence import Watch, divergences
from mer_jax.training.experiment import ExperimentData, examples_of, load_experiment_data
from mer_jax.training.objectives import make_objective
from mer_jax.training.optimizer import (evaluated_params, frozen_groups, learning_rates, make_optimizer,
                                        parameter_groups)
from mer_jax.training.progress import EpochProgress
from mer_jax.training.steps import SplitModel, make_eval_step, make_train_step, no_divergence, seed_slice, stack
from mer_jax.training.utterance_features import Trainer, utterance_vectors
from mer_jax.training.workdir import fold_dir, is_writer, prepare_workdir

PARTS = ("train", "validation", "test")


def train_and_evaluate(config, workdir, *, restart: bool = False) -> dict:
    """Run every fold of config's protocol in `workdir`; return (and write) the metrics."""
    validate(config)
    workdir = prepare_workdir(config, workdir, restart=restart)
    data = load_experiment_data(config)
    print(data.report.summary())
    check_training_parts(config, data)
    folds = [train_fold(config, data, split, fold_dir(workdir, k, len(data.splits)))
             for k, split in enumerate(data.splits)]
    results = summarize_folds(folds)
    results["skipped_bad_input"] = len(data.report.skipped)
    results["excluded_by_label"] = dict(data.report.excluded_labels)
    results["corpus"] = data.report.corpus
    report = format_report(results, config)
    if is_writer():
        (workdir / "metrics.json").write_text(json.dumps(results, indent=2))
        (workdir / "report.txt").write_text(report + "\n")
        write_report_files(workdir, results, config, report)
    print(report)
    return results


def check_training_parts(config, data: ExperimentData) -> None:
    """Before anything trains: refuse a fold whose training part holds fewer examples (dialogues for a
    dialogue-level model) than one batch, since training batches are whole (`batch_order`), or nothing to
    test; say which classes of the label set no training utterance has."""
    if not data.utterances:
        raise ConfigError(f"no utterances kept from {config.data.root} with label set {config.data.label_set!r}: "
                          "see the reader's summary above")
    dialogues = get_model_spec(config.model.name).level == "dialogue"
    copies = 1 if dialogues else 1 + len(data.sped_up)  # augment.speeds adds the training utterances again
    for k, split in enumerate(data.splits):
        fold = f" of fold {k + 1}" if len(data.splits) > 1 else ""
        n = len({data.utterances[i].dialogue_id for i in split.train}) if dialogues else copies * len(split.train)
        if n < config.train.batch_size:
            raise ConfigError(f"train.batch_size = {config.train.batch_size}, but the training part{fold} holds only "
                              f"{n} {'dialogues' if dialogues else 'examples'}: lower train.batch_size")
        if not len(split.test):
            raise ConfigError(f"the test part{fold} is empty (split.protocol = {config.split.protocol!r}): "
                              "check split.test_fraction or split.test_sessions")
        trained = {data.label_set.index(data.utterances[i].label) for i in split.train}
        missing = [c for i, c in enumerate(data.label_set.classes) if i not in trained]
        if missing:
            print(f"warning: no training utterance{fold} of class {', '.join(missing)} "
                  f"(label set {config.data.label_set!r}): the model cannot learn it")


@dataclasses.dataclass(frozen=True)
class FoldData:
    examples: dict[str, Examples]  # train / validation / test
    label_set: LabelSet
    sizes: dict  # what the data decides about the model: num_classes, vocab_size / text_dim / audio_dim


def prepare_fold_data(config, data: ExperimentData, split: Split, workdir: pathlib.Path, *,
                      write: bool = True) -> FoldData:
    """The fold's examples and the model sizes they decide (with `write`, saved with the fold).

    Utterance-level models read MFCCs and tokens; a tokenizer (fitted on the training transcripts
    where it is a word vocabulary) is saved with the fold, and a fold that has one uses it, so
    resumed runs, re-evaluation and inference tokenize as training did. Dialogue-level models read
    utterance vectors, computed from the fold's training part only. Every part shares the length
    buckets of the training part (``features.length_buckets``); ``train.class_weights`` weighs the
    training part's utterances by class (`Examples.class_weighted`); ``augment.speeds`` adds the
    training utterances at other speeds to the training part (never to validation or test).
    """
    write = write and is_writer()
    spec = get_model_spec(config.model.name)
    sizes = {"num_classes": data.label_set.num_classes}
    if spec.level == "dialogue":
        from mer_jax.data.dialogues import dialogue_examples, longest_dialogue  # noqa: PLC0415

        vectors = utterance_vectors(config, data, split, workdir, Trainer(train_fold, load_best))
        sizes.update({f"{m}_dim": int(v.shape[1]) for m, v in vectors.items()})
        longest = longest_dialogue(data.utterances)
        examples = {part: dialogue_examples(data.utterances, getattr(split, part), data.label_set, vectors, longest)
                    for part in PARTS}
    else:
        tokenizer = None
        if "text" in spec.modalities(config):
            saved = workdir / "tokenizer"
            tokenizer = get_tokenizer(str(saved) if saved.exists() else tokenizer_name(config.text),
                                      [data.utterances[i].transcript for i in split.train])
            sizes["vocab_size"] = len(tokenizer)
            if write:
                tokenizer.save_pretrained(str(saved))
        examples = {part: examples_of(config, data, getattr(split, part), tokenizer) for part in PARTS}
        if data.sped_up:  # augment.speeds: the training utterances once more at every speed
            examples["train"] = Examples.concatenate(
                [examples["train"], *(examples_of(config, data, split.train, tokenizer, speed=s) for s in data.sped_up)])
    buckets = length_buckets(examples["train"], config.features.length_buckets)
    examples = {part: e.with_buckets(buckets) for part, e in examples.items()}
    if config.train.class_weights != "none" and len(examples["train"]):
        examples["train"] = examples["train"].class_weighted(sizes["num_classes"], CLASS_WEIGHTS[config.train.class_weights])
    if write:
        (workdir / SIZES).write_text(json.dumps(sizes))
    return FoldData(examples, data.label_set, sizes)


CLASS_WEIGHTS = {"balanced": 1.0, "sqrt": 0.5}  # train.class_weights -> the power of n / (C n_c)
SIZES = "model_sizes.json"  # a fold's model sizes, which inference rebuilds the model from


def run_seeds(config) -> list[int]:
    """The seeds a run trains together: config.seed, config.seed + 1, ... (``train.seeds`` of them)."""
    return [config.seed + k for k in range(config.train.seeds)]


@dataclasses.dataclass
class Trainable:
    """Models ready for the jitted steps: their split form, steps, mesh, and the state a checkpoint holds.

    Every array of the state has a leading seed axis (N = ``train.seeds``)."""

    split: SplitModel
    train_step: object
    eval_step: object
    mesh: object
    steps_per_epoch: int
    learning_rates: dict  # parameter group -> its schedule over optimiser updates (logged to TensorBoard)
    state: dict  # params, other, opt_state, epoch, best (N,), best_epoch (N,), diverged (training/divergence.py)


def build_trainable(config, fold: FoldData) -> Trainable:
    """One model per seed (with its data-dependent preparation), stacked; optimiser, replicated state, steps."""
    splits = []
    for seed in run_seeds(config):
        model = build_model(config, fold.sizes, seed)
        model.prepare(fold.examples["train"])
        splits.append(SplitModel.of(model, config.model.dtype))
    split = splits[0]
    groups = parameter_groups(split.params, model.encoder_modules, model.audio_encoder_modules)
    frozen = frozen_groups(config.train)
    steps_per_epoch = len(fold.examples["train"]) // config.train.batch_size
    updates = steps_per_epoch * config.train.epochs // config.train.accumulate_steps
    optimizer = make_optimizer(config.train, updates, groups)
    rates = learning_rates(config.train, updates, groups)
    mesh = sharding.data_mesh()
    params, other = sharding.replicate((stack([s.params for s in splits]), stack([s.other for s in splits])), mesh)
    del splits
    train_step = make_train_step(split, optimizer, make_objective(config.objective),
                                 frozen=jax.tree.map(lambda g: g in frozen, groups) if frozen else None,
                                 state_sharding=sharding.replicated(mesh), guard=True)
    n = config.train.seeds
    opt_state = sharding.replicate(jax.jit(jax.vmap(optimizer.init))(params), mesh)
    state = loop_state(params, other, opt_state, epoch=0, best=np.full(n, -1.0), best_epoch=np.zeros(n),
                       diverged=sharding.replicate(no_divergence(n), mesh))
    return Trainable(split, train_step, make_eval_step(split, seeds=True), mesh, steps_per_epoch, rates, state)


def loop_state(params, other, opt_state, epoch: int, best, best_epoch, diverged) -> dict:
    """Everything a resumed run needs: model and optimiser state, epochs done, each seed's best validation score,
    and which seeds diverged where (`steps.no_divergence`; a dropped seed stays dropped)."""
    return {"params": params, "other": other, "opt_state": opt_state, "epoch": np.array(epoch, np.int32),
            "best": np.asarray(best, np.float32), "best_epoch": np.asarray(best_epoch, np.int32), "diverged": diverged}


def _feed() -> dict:
    return dict(process_index=jax.process_index(), process_count=jax.process_count())


def predict(trainable: Trainable, params, other, examples: Examples, batch_size: int) -> np.ndarray:
    """Every seed's class probabilities of every example: (N, n, C) or (N, n, U, C).

    Every process feeds its share of each global batch; the outputs are gathered from all processes
    and put back in example order by the index each example carries.
    """
    from mer_jax.data.pipeline import batches  # noqa: PLC0415 (TensorFlow only where data is fed)

    def per_batch():
        for local in batches(examples, global_batch_size=batch_size, train=False, **_feed()):
            batch = sharding.global_batch(local, trainable.mesh)
            yield sharding.gather(trainable.eval_step(params, other, batch)), sharding.gather(batch["index"])

    return examples.in_order(per_batch())


def score(trainable: Trainable, params, other, examples: Examples, config, label_set) -> list[tuple[dict, np.ndarray]]:
    """Per seed: metrics over the real utterances of `examples`, and their probabilities (flattened like
    ``examples.labels()``)."""
    return [scored(examples.real(probabilities), examples.labels(), label_set)
            for probabilities in predict(trainable, params, other, examples, config.train.batch_size)]


def ensemble(scores: list[tuple[dict, np.ndarray]], examples: Examples, label_set) -> tuple[dict, np.ndarray]:
    """The metrics and probabilities of the seeds' mean class probabilities (`score`'s per-seed output)."""
    return scored(np.mean([p for _, p in scores], axis=0), examples.labels(), label_set)


def scored(probabilities: np.ndarray, labels: np.ndarray, label_set) -> tuple[dict, np.ndarray]:
    """The metrics (and cross-entropy as ``loss``) of class probabilities (n, C) against labels (n,)."""
    metrics = classification_metrics(labels, probabilities.argmax(-1), label_set.classes)
    metrics["loss"] = cross_entropy_of(probabilities, labels)
    return metrics, probabilities


def cross_entropy_of(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy (nats) of predicted class probabilities (n, C) against labels (n,)."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-12)).mean()) if len(labels) else float("nan")


def _train_batches(config, examples: Examples, epoch: int):
    """One epoch's batches of every seed, stacked: (N, local batch, ...); each seed has its own order."""
    from mer_jax.data.pipeline import seed_batches  # noqa: PLC0415

    return seed_batches(examples, seeds=run_seeds(config), global_batch_size=config.train.batch_size, epoch=epoch,
                        **_feed())


def run_epochs(config, fold: FoldData, trainable: Trainable, checkpoints: RunCheckpoints, workdir) -> dict:
    """Train to ``train.epochs`` (from the latest checkpoint, if any), keeping each seed's best model by
    validation (the best checkpoint holds, per seed, the parameters of that seed's best epoch).

    A seed's first non-finite step stops the run (`TrainingDiverged`) or drops the seed
    (``train.nonfinite``; training/divergence.py), read where the loop syncs anyway: at logged steps
    and before each epoch's validation, so a stopped run writes nothing of the epoch it diverged in."""
    tc = config.train
    restored = checkpoints.restore_latest(trainable.state)
    best_models = None
    if restored is not None:
        trainable.state = restored
        best_models = checkpoints.restore_best(_model_state(restored))
        print(f"resuming {workdir} after epoch {int(restored['epoch'])}")
    state = trainable.state
    params, other, opt_state, diverged = state["params"], state["other"], state["opt_state"], state["diverged"]
    start, best, best_epoch = int(state["epoch"]), np.array(state["best"]), np.array(state["best_epoch"])
    writer = SummaryWriter(str(workdir / "tensorboard"), write_to_disk=is_writer())
    history = read_history(workdir, start)
    seed_keys = [jax.random.key(seed) for seed in run_seeds(config)]
    steps = trainable.steps_per_epoch
    watch = Watch(config, run_seeds(config), steps, workdir, checkpoints, jax.device_get(diverged))
    progress = EpochProgress(workdir.name, start, tc.epochs, tc.select_metric, is_writer())
    try:  # the TensorBoard events so far are kept however the run ends (a stop on divergence)
        for epoch in range(start, tc.epochs):
            epoch_sums = None  # on the device, read once per epoch: no sync per step
            for i, local in enumerate(_train_batches(config, fold.examples["train"], epoch)):
                step = epoch * steps + i
                keys = jnp.stack([jax.random.fold_in(key, step) for key in seed_keys])
                if epoch == start and i == 0:
                    progress.before_first_step()
                params, other, opt_state, measured, diverged = trainable.train_step(
                    params, other, opt_state, sharding.global_batch(local, trainable.mesh, axis=1), keys, step, diverged)
                if epoch == start and i == 0:
                    progress.after_first_step(measured)
                running = {"loss": measured["loss"], "accuracy": measured["accuracy"]}
                epoch_sums = running if epoch_sums is None else jax.tree.map(jnp.add, epoch_sums, running)
                if step % tc.log_every_steps == 0:
                    logged, record = jax.device_get((measured, diverged))
                    watch.check(record, epoch)
                    _log(writer, "train", logged, step)
                    update = step // tc.accumulate_steps
                    _log(writer, "learning_rate", {group: [rate(update)] for group, rate in trainable.learning_rates.items()},
                         step)
            # Every process holds the same record (global losses), so all stop here, or drop the same seed, together.
            watch.check(jax.device_get(diverged), epoch)
            alive = watch.alive()  # a dropped seed trained on no more: it measures and competes no more
            evaluated = evaluated_params(tc, params, opt_state)
            validation = [m for m, _ in score(trainable, evaluated, other, fold.examples["validation"], config, fold.label_set)]
            _log(writer, "validation", {name: np.where(alive, [v[name] for v in validation], np.nan)
                                        for name in ("loss", "wa", "ua", "weighted_f1", "macro_f1")}, (epoch + 1) * steps)
            train = jax.device_get(epoch_sums) if steps else {"loss": np.full(len(seed_keys), np.nan)} | {
                "accuracy": np.full(len(seed_keys), np.nan)}
            kept = lambda values: [float(v) if a else None for v, a in zip(values, alive)]  # noqa: E731 (null: dropped)
            history.append({"epoch": epoch + 1, "train_loss": kept(train["loss"] / max(steps, 1)),
                            "train_accuracy": kept(train["accuracy"] / max(steps, 1)),
                            "validation_loss": kept([v["loss"] for v in validation]),
                            "validation_accuracy": kept([v["wa"] for v in validation])})
            if is_writer():
                (workdir / HISTORY).write_text(json.dumps(history))
            scores = np.array([v[tc.select_metric] for v in validation])
            progress.epoch_done(np.where(alive, train["loss"] / max(steps, 1), np.nan), np.where(alive, scores, np.nan))
            improved = (scores > best) & alive
            if improved.any():
                best, best_epoch = np.where(improved, scores, best), np.where(improved, epoch + 1, best_epoch)
                current = jax.device_get(_model_state({"params": evaluated, "other": other}))
                best_models = current if best_models is None else jax.tree.map(
                    lambda new, old: np.where(improved.reshape(-1, *[1] * (np.ndim(new) - 1)), new, old),
                    current, best_models)
                checkpoints.save_best(epoch + 1, best_models)
            if (epoch + 1) % tc.checkpoint_every_epochs == 0 or epoch + 1 == tc.epochs:
                checkpoints.save_latest(epoch + 1, loop_state(params, other, opt_state, epoch + 1, best, best_epoch,
                                                              diverged))
    finally:
        writer.close()
        progress.close()
    trainable.state = loop_state(params, other, opt_state, tc.epochs, best, best_epoch, diverged)
    return trainable.state


HISTORY = "history.json"  # per epoch and seed: train loss and accuracy (mean over the epoch's steps, in train
# mode), validation loss and accuracy (the paper's Table 4)


def read_history(workdir: pathlib.Path, epochs: int) -> list[dict]:
    """The training history a fold wrote, up to `epochs` (a resumed run continues from its checkpoint)."""
    path = pathlib.Path(workdir) / HISTORY
    if not path.exists():
        return []
    return [entry for entry in json.loads(path.read_text()) if entry["epoch"] <= epochs]


def _model_state(state: dict) -> dict:
    return {"params": state["params"], "other": state["other"]}


def _log(writer, prefix: str, measured: dict, step: int) -> None:
    """Scalars per seed: ``prefix/name`` for a single seed, ``prefix/name/seed<k>`` for several. NaN (a seed
    dropped when its training diverged, which the run's output names) is left out."""
    for name, values in measured.items():
        values = np.asarray(values).reshape(-1)
        for k, value in enumerate(values):
            if np.isnan(value):
                continue
            writer.add_scalar(f"{prefix}/{name}" + (f"/seed{k}" if len(values) > 1 else ""), float(value), step)


def evaluate_and_write(config, fold: FoldData, trainable: Trainable, checkpoints: RunCheckpoints, split: Split,
                       workdir: pathlib.Path) -> dict:
    """Restore each seed's best model, score the test part once (and validation again), write the fold's files.

    With several seeds, their ensemble (the mean of the seeds' class probabilities, each seed at its own
    best epoch: nothing chosen on the test part) is scored too, as ``ensemble``. Seeds dropped because their
    training diverged (``train.nonfinite = 'drop_seed'``) are listed under ``dropped_seeds`` (where and why)
    and left out of the seeds' list, mean, spread, ensemble and prediction files."""
    state = trainable.state
    best = checkpoints.restore_best(_model_state(state))
    tests = score(trainable, best["params"], best["other"], fold.examples["test"], config, fold.label_set)
    validations = score(trainable, best["params"], best["other"], fold.examples["validation"], config, fold.label_set)
    seeds = run_seeds(config)
    dropped = divergences(jax.device_get(state["diverged"]), seeds, trainable.steps_per_epoch)
    kept = [k for k, seed in enumerate(seeds) if seed not in {d.seed for d in dropped}]
    per_seed = [{"seed": seeds[k], "best_epoch": int(state["best_epoch"][k]), "validation": validations[k][0],
                 "test": tests[k][0]} for k in kept]
    result = {"protocol": split.name, "sizes": {part: int(len(fold.examples[part].labels())) for part in PARTS},
              "parameters": int(sum(x.size for x in jax.tree.leaves(trainable.split.params))),
              "history": read_history(workdir, config.train.epochs)}
    written = [("test_predictions.csv", tests[0][1])]
    if len(seeds) == 1:
        result.update({key: per_seed[0][key] for key in ("best_epoch", "validation", "test")})
    else:
        result.update(seeds=per_seed, test=summarize_seeds([s["test"] for s in per_seed]),
                      validation=summarize_seeds([s["validation"] for s in per_seed]))
        if dropped:
            result["dropped_seeds"] = [d.to_json() for d in dropped]
        ensembles = {part: ensemble([scores[k] for k in kept], fold.examples[part], fold.label_set)
                     for part, scores in (("validation", validations), ("test", tests))}
        result["ensemble"] = {part: metrics for part, (metrics, _) in ensembles.items()}
        written = [(f"test_predictions_seed{seeds[k]}.csv", tests[k][1]) for k in kept]
        written.append(("test_predictions_ensemble.csv", ensembles["test"][1]))
    if is_writer():
        for name, probabilities in written:
            write_predictions(workdir / name, fold.examples["test"], probabilities, fold.label_set.classes)
        (workdir / "fold_metrics.json").write_text(json.dumps(result, indent=2))
        with SummaryWriter(str(workdir / "tensorboard")) as writer:  # the test, once, at the last step
            _log(writer, "test", {name: [tests[k][0][name] for k in kept] for name in ("wa", "ua", "weighted_f1", "macro_f1")},
                 config.train.epochs * trainable.steps_per_epoch)
    return result


def train_fold(config, data: ExperimentData, split: Split, workdir: pathlib.Path) -> dict:
    """Train on split.train, select on split.validation, evaluate split.test once."""
    if is_writer():
        workdir.mkdir(parents=True, exist_ok=True)
    fold = prepare_fold_data(config, data, split, workdir)
    trainable = build_trainable(config, fold)
    checkpoints = RunCheckpoints(workdir)
    try:
        run_epochs(config, fold, trainable, checkpoints, workdir)
        return evaluate_and_write(config, fold, trainable, checkpoints, split, workdir)
    finally:  # a run that stops (e.g. diverged) still completes the checkpoints it was writing
        checkpoints.close()


def load_best_seeds(config, workdir) -> tuple[SplitModel, nnx.State, nnx.State]:
    """A trained fold's best models of all its seeds: the split model and the stacked params and other state."""
    workdir = pathlib.Path(workdir)
    sizes = json.loads((workdir / SIZES).read_text())
    splits = [SplitModel.of(build_model(config, sizes, seed), config.model.dtype) for seed in run_seeds(config)]
    checkpoints = RunCheckpoints(workdir)
    best = checkpoints.restore_best({"params": stack([s.params for s in splits]),
                                     "other": stack([s.other for s in splits])})
    checkpoints.close()
    return splits[0], best["params"], best["other"]


def load_best(config, workdir, seed_index: int = 0) -> nnx.Module:
    """A trained fold's best model (of its seed number `seed_index`), in evaluation mode."""
    split, params, other = load_best_seeds(config, workdir)
    return split.merge(seed_slice(params, seed_index), seed_slice(other, seed_index))


def write_predictions(path, examples: Examples, probabilities: np.ndarray, classes) -> None:
    """One CSV row per real utterance: id, true label, predicted label, class probabilities (an id
    holding a comma or a quote is quoted, as CSV readers expect)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["utterance_id", "label", "prediction", *(f"p_{c}" for c in classes)])
        for uid, label, p in zip(examples.utterance_ids(), examples.labels(), probabilities):
            writer.writerow([uid, classes[label], classes[p.argmax()], *(f"{x:.5f}" for x in p)])
