"""The training loop: corpus -> features -> splits -> train with validation selection -> test once.

For each fold of the protocol: fit the tokenizer on the training transcripts, build the model, train
for ``train.epochs`` epochs (checkpointing the latest state and the best model by the validation
metric), then restore the best model and evaluate the test part once. A run that finds a latest
checkpoint in its workdir resumes from it and ends exactly where an uninterrupted run would.
Writes, per run: config.json, metrics.json, report.txt, test predictions, TensorBoard events.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
from flax import nnx
from tensorboardX import SummaryWriter
from tqdm import tqdm

from mer_jax.config import validate
from mer_jax.data.examples import Examples, make_examples
from mer_jax.data.experiment import fold_dir, load_experiment_data
from mer_jax.data.splits import Split
from mer_jax.data.tokenizer import get_tokenizer
from mer_jax.evaluation.metrics import classification_metrics
from mer_jax.evaluation.report import format_report, summarize_folds
from mer_jax.models.registry import build_model, tokenizer_spec
from mer_jax.training import sharding
from mer_jax.training.checkpoints import RunCheckpoints
from mer_jax.training.optimizer import make_optimizer
from mer_jax.training.steps import SplitModel, make_eval_step, make_train_step


def train_and_evaluate(config, workdir) -> dict:
    """Run every fold of config's protocol in `workdir`; return (and write) the metrics."""
    validate(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json(indent=2))
    data = load_experiment_data(config)
    print(data.report.summary())
    folds = []
    for k, split in enumerate(data.splits):
        folds.append(train_fold(config, data.utterances, data.audio, data.label_set, split,
                                fold_dir(workdir, k, len(data.splits))))
    results = summarize_folds(folds)
    results["skipped_bad_input"] = len(data.report.skipped)
    results["corpus"] = data.report.corpus
    (workdir / "metrics.json").write_text(json.dumps(results, indent=2))
    report = format_report(results, config)
    (workdir / "report.txt").write_text(report + "\n")
    print(report)
    return results


def _examples(utterances, split: Split, audio, tokenizer, label_set, max_tokens) -> dict[str, Examples]:
    return {part: make_examples(utterances, getattr(split, part), audio, tokenizer, label_set, max_tokens)
            for part in ("train", "validation", "test")}


def train_fold(config, utterances, audio, label_set, split: Split, workdir: pathlib.Path) -> dict:
    """Train on split.train, select on split.validation, evaluate split.test once."""
    from mer_jax.data.pipeline import batches  # noqa: PLC0415 (TensorFlow only where data is fed)

    workdir.mkdir(parents=True, exist_ok=True)
    tc = config.train
    tokenizer = get_tokenizer(tokenizer_spec(config), [utterances[i].transcript for i in split.train])
    tokenizer.save_pretrained(str(workdir / "tokenizer"))  # inference tokenizes as training did
    examples = _examples(utterances, split, audio, tokenizer, label_set, config.features.max_tokens)
    model = build_model(config, label_set.num_classes, len(tokenizer), nnx.Rngs(config.seed))
    if "audio" in config.model.modalities:
        model.feature_norm.set_statistics(examples["train"].frames)
    split_model = SplitModel.of(model)
    mesh = sharding.data_mesh()
    steps_per_epoch = len(examples["train"]) // tc.batch_size
    optimizer = make_optimizer(tc, steps_per_epoch * tc.epochs)
    params, other = sharding.replicate((split_model.params, split_model.other), mesh)
    opt_state = jax.jit(optimizer.init)(params)
    train_step = make_train_step(split_model, optimizer, freeze_encoder=tc.freeze_encoder)
    eval_step = make_eval_step(split_model)
    feed = dict(global_batch_size=tc.batch_size, max_frames=config.features.max_frames,
                process_index=jax.process_index(), process_count=jax.process_count())

    def evaluate(part: str) -> tuple[dict, np.ndarray]:
        probabilities = predict(eval_step, params, other, batches(examples[part], train=False, **feed), mesh,
                                len(examples[part]))
        return (classification_metrics(examples[part].labels, probabilities.argmax(-1), label_set.classes),
                probabilities)

    checkpoints = RunCheckpoints(workdir)
    state = _loop_state(params, other, opt_state, epoch=0, best=-1.0, best_epoch=0)
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state = restored
        print(f"resuming {workdir} after epoch {int(state['epoch'])}")
    params, other, opt_state = state["params"], state["other"], state["opt_state"]
    start_epoch, best, best_epoch = int(state["epoch"]), float(state["best"]), int(state["best_epoch"])
    writer = SummaryWriter(str(workdir / "tensorboard"), write_to_disk=jax.process_index() == 0)
    base_key = jax.random.key(config.seed)
    for epoch in tqdm(range(start_epoch, tc.epochs), desc=f"training {workdir.name}", unit="epoch",
                      initial=start_epoch, total=tc.epochs):
        for i, batch in enumerate(batches(examples["train"], train=True, seed=config.seed, epoch=epoch, **feed)):
            step = epoch * steps_per_epoch + i
            params, other, opt_state, measured = train_step(
                params, other, opt_state, sharding.global_batch(batch, mesh), jax.random.fold_in(base_key, step))
            if step % tc.log_every_steps == 0:
                for name, value in jax.device_get(measured).items():
                    writer.add_scalar(f"train/{name}", float(value), step)
        validation, _ = evaluate("validation")
        score = validation[tc.select_metric]
        for name in ("wa", "ua", "weighted_f1", "macro_f1"):
            writer.add_scalar(f"validation/{name}", validation[name], (epoch + 1) * steps_per_epoch)
        if score > best:
            best, best_epoch = score, epoch + 1
            checkpoints.save_best(best_epoch, {"params": params, "other": other})
        if (epoch + 1) % tc.checkpoint_every_epochs == 0 or epoch + 1 == tc.epochs:
            checkpoints.save_latest(epoch + 1, _loop_state(params, other, opt_state, epoch + 1, best, best_epoch))
    writer.close()
    best_state = checkpoints.restore_best({"params": params, "other": other})
    checkpoints.close()
    params, other = best_state["params"], best_state["other"]
    test, probabilities = evaluate("test")
    validation, _ = evaluate("validation")
    _write_predictions(workdir / "test_predictions.csv", examples["test"], probabilities, label_set.classes)
    fold = {"protocol": split.name, "best_epoch": int(best_epoch), "validation": validation, "test": test,
            "sizes": {part: len(examples[part]) for part in examples}}
    (workdir / "fold_metrics.json").write_text(json.dumps(fold, indent=2))
    return fold


def _loop_state(params, other, opt_state, epoch: int, best: float, best_epoch: int) -> dict:
    """Everything a resumed run needs: model and optimiser state, epochs done, the best validation score."""
    return {"params": params, "other": other, "opt_state": opt_state, "epoch": np.array(epoch, np.int32),
            "best": np.array(best, np.float32), "best_epoch": np.array(best_epoch, np.int32)}


def predict(eval_step, params, other, local_batches, mesh, n: int) -> np.ndarray:
    """Class probabilities of the `n` examples fed by an evaluation iterator, in example order.

    Each batch carries its examples' indices (-1 for padding), so the order survives any sharding
    of batches over processes.
    """
    probabilities, indices = [], []
    for local in local_batches:
        batch = sharding.global_batch(local, mesh)
        probabilities.append(sharding.gather(eval_step(params, other, batch)))
        indices.append(sharding.gather(batch["index"]))
    probabilities, indices = np.concatenate(probabilities), np.concatenate(indices)
    out = np.zeros((n, probabilities.shape[1]), np.float32)
    out[indices[indices >= 0]] = probabilities[indices >= 0]
    return out


def _write_predictions(path, examples: Examples, probabilities: np.ndarray, classes) -> None:
    lines = ["utterance_id,label,prediction," + ",".join(f"p_{c}" for c in classes)]
    for uid, label, p in zip(examples.ids, examples.labels, probabilities):
        lines.append(f"{uid},{classes[label]},{classes[p.argmax()]}," + ",".join(f"{x:.5f}" for x in p))
    path.write_text("\n".join(lines) + "\n")
