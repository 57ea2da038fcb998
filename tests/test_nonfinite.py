"""A run that meets a non-finite loss or gradient stops at that step, naming it, and keeps what was finite;
with several seeds, ``train.nonfinite = 'drop_seed'`` lets the other seeds finish (issue 31).

The faults are planted where their first step is known without the code under test: a learning rate of
1e30 whose first update (gradient accumulation delays it to a chosen step) sends the parameters to about
1e30, so the next step's loss is NaN; or NaN in one seed's batch at a chosen epoch and step.
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mer_jax.config import base_config, validate
from mer_jax.configs import demo
from mer_jax.errors import ConfigError, TrainingDiverged
from mer_jax.models.registry import build_model
from mer_jax.training import loop
from mer_jax.training.checkpoints import RunCheckpoints
from mer_jax.training.divergence import divergences
from mer_jax.training.objectives import cross_entropy
from mer_jax.training.optimizer import make_optimizer, parameter_groups
from mer_jax.training.steps import SplitModel, make_train_step, no_divergence, seed_slice, stack
from test_cli import mer_jax_here

TINY = ["--config=configs/demo.py", "--config.train.epochs=3", "--config.train.batch_size=16",
        "--config.features.max_frames=50", "--config.model.d_model=16", "--config.text.hidden=16"]


def _restored(path) -> dict:
    """A checkpoint's tree, restored as it was saved (no target structure needed)."""
    manager = ocp.CheckpointManager(path.absolute())
    tree = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
    manager.close()
    return tree


def _model(state: dict) -> dict:
    """What a latest checkpoint holds of the models: parameters, other state, optimiser state."""
    return {k: state[k] for k in ("params", "other", "opt_state")}


def _all_finite(tree) -> bool:
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


def test_a_diverging_run_stops_in_one_line_naming_the_step_and_keeps_the_last_finite_epoch(demo_root, tmp_path):
    # accumulate_steps = 6: no update until global step 5, whose update (lr 1e30) sends the parameters to
    # ~1e30; the loss of global step 6 is the first non-finite number
    workdir = tmp_path / "run"
    done = mer_jax_here("train", *TINY, f"--workdir={workdir}", f"--config.data.root={demo_root}",
                        f"--config.data.cache_dir={tmp_path / 'cache'}", "--config.train.lr=1e30",
                        "--config.train.accumulate_steps=6")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"mer-jax train: {workdir}: training diverged: seed 0 at epoch "), done.stderr[-3000:]
    epoch, step, steps, global_step = map(int, re.search(
        r"at epoch (\d+), step (\d+) of (\d+) \(global step (\d+)\): loss nan", line).groups())
    assert 2 < steps < 6  # the fault falls into the second epoch: the first one is finite
    assert global_step == 6 and (epoch, step) == (6 // steps + 1, 6 % steps + 1)
    assert "kept the last finite checkpoint (epoch 1) and history.json up to epoch 1" in line.lower()
    assert "train.lr (now 1e+30)" in line and "train.clip_norm" in line and "the data" in line
    assert "drop_seed" not in line  # one seed: nothing to go on with

    assert sorted(p.name for p in (workdir / "checkpoints/latest").iterdir()) == ["1"]
    latest = _restored(workdir / "checkpoints/latest")
    assert int(latest["epoch"]) == 1 and _all_finite(_model(latest)) and int(latest["diverged"]["step"][0]) == -1
    assert _all_finite(_restored(workdir / "checkpoints/best"))
    history = json.loads((workdir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and all(np.isfinite(h["train_loss"]).all() for h in history)
    assert not (workdir / "metrics.json").exists() and not (workdir / "fold_metrics.json").exists()


BAD_EPOCH, BAD_STEP = 1, 2  # counted from 0: the third step of the second epoch


def _plant_nan(monkeypatch, faults: dict[int, tuple[int, int]]):
    """Seed k's batch at (epoch, step) = faults[k] (counted from 0) holds NaN in every floating field; the
    other seeds' batches stay clean."""
    batches = loop._train_batches

    def planted(config, examples, epoch):
        for i, batch in enumerate(batches(config, examples, epoch)):
            seeds = [k for k, at in faults.items() if at == (epoch, i)]
            if seeds:
                batch = {k: v.copy() for k, v in batch.items()}
                for v in batch.values():
                    if np.issubdtype(v.dtype, np.floating):
                        v[seeds] = np.nan
            yield batch

    monkeypatch.setattr(loop, "_train_batches", planted)


def _config(demo_root, tmp_path, nonfinite: str):
    config = demo.get_config()
    config.data.update(root=str(demo_root), cache_dir=str(tmp_path / "cache"))
    config.features.max_frames, config.model.d_model, config.text.hidden = 50, 16, 16
    config.train.update(epochs=3, batch_size=16, seeds=2, nonfinite=nonfinite)
    return config


def test_stop_stops_at_one_seeds_fault_and_drop_seed_finishes_with_the_other(demo_root, tmp_path, monkeypatch, capsys):
    _plant_nan(monkeypatch, {1: (BAD_EPOCH, BAD_STEP)})
    stopped = tmp_path / "stopped"
    with pytest.raises(TrainingDiverged) as raised:
        loop.train_and_evaluate(_config(demo_root, tmp_path, "stop"), stopped)
    message = str(raised.value)
    steps = int(re.search(r"step \d+ of (\d+)", message).group(1))
    where = f"seed 1 at epoch {BAD_EPOCH + 1}, step {BAD_STEP + 1} of {steps} (global step {BAD_EPOCH * steps + BAD_STEP})"
    assert f"training diverged: {where}: loss nan." in message and "seed 0 at" not in message
    assert "\n" not in message and "train.nonfinite=drop_seed" in message
    assert sorted(p.name for p in (stopped / "checkpoints/latest").iterdir()) == ["1"]
    assert [h["epoch"] for h in json.loads((stopped / "history.json").read_text())] == [1]

    # the same folder, told to drop the seed, resumes from epoch 1 and finishes with seed 0
    capsys.readouterr()
    results = loop.train_and_evaluate(_config(demo_root, tmp_path, "drop_seed"), stopped)
    out = capsys.readouterr().out
    assert "resuming" in out and f"warning: {stopped}: training diverged: {where}: loss nan; seed 1 is dropped" in out
    fold = results["folds"][0]
    assert [s["seed"] for s in fold["seeds"]] == [0]
    (dropped,) = fold["dropped_seeds"]
    assert (dropped["seed"], dropped["epoch"], dropped["step"], dropped["loss"]) == (1, BAD_EPOCH + 1, BAD_STEP + 1, "nan")
    seed0 = fold["seeds"][0]["test"]
    assert fold["test"]["seeds"] == 1 and fold["test"]["ua"] == seed0["ua"] and fold["test"]["ua_std"] == 0
    assert fold["ensemble"]["test"]["confusion_matrix"] == seed0["confusion_matrix"]  # an ensemble of seed 0 alone
    assert json.loads((stopped / "metrics.json").read_text())["folds"][0]["dropped_seeds"] == [dropped]
    report = (stopped / "report.txt").read_text()
    assert f"seed 1 dropped: training diverged at epoch {BAD_EPOCH + 1}, step {BAD_STEP + 1}" in report
    assert "mean ± std over 1 seeds" in report and "seed 1 test" not in report
    assert (stopped / "test_predictions_seed0.csv").exists() and not (stopped / "test_predictions_seed1.csv").exists()
    history = json.loads((stopped / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for h in history:  # seed 1 measures nothing from the epoch it diverged in
        for key in ("train_loss", "train_accuracy", "validation_loss", "validation_accuracy"):
            assert np.isfinite(h[key][0]) and (h[key][1] is None) == (h["epoch"] >= BAD_EPOCH + 1)
    latest = _restored(stopped / "checkpoints/latest")
    assert int(latest["epoch"]) == 3 and _all_finite(_model(latest))  # the dropped seed's state stayed finite
    assert latest["diverged"]["step"].tolist() == [-1, BAD_EPOCH * steps + BAD_STEP]
    assert latest["best_epoch"][1] == BAD_EPOCH and _all_finite(_restored(stopped / "checkpoints/best"))

    # a run that drops the seed from the start ends exactly where the stopped-and-resumed one did
    fresh = loop.train_and_evaluate(_config(demo_root, tmp_path, "drop_seed"), tmp_path / "fresh")
    assert fresh["folds"][0]["seeds"] == fold["seeds"] and fresh["folds"][0]["dropped_seeds"] == [dropped]
    assert fresh["ensemble"] == results["ensemble"]


def test_a_seed_dropped_at_its_first_step_never_competes_for_the_best_checkpoint(demo_root, tmp_path, monkeypatch):
    """Seed 1's first batch is NaN: it never trains, so no epoch is its best (its slot of the best checkpoint
    holds a finite model all the same), and the run finishes with seed 0."""
    _plant_nan(monkeypatch, {1: (0, 0)})
    config = _config(demo_root, tmp_path, "drop_seed")
    config.train.epochs = 1
    results = loop.train_and_evaluate(config, tmp_path / "run")
    assert [s["seed"] for s in results["folds"][0]["seeds"]] == [0]
    assert [(d["seed"], d["epoch"], d["step"], d["global_step"]) for d in results["folds"][0]["dropped_seeds"]] == [
        (1, 1, 1, 0)]
    latest = _restored(tmp_path / "run/checkpoints/latest")
    assert latest["best_epoch"].tolist() == [1, 0] and latest["best"][1] < 0
    assert _all_finite(_model(latest)) and _all_finite(_restored(tmp_path / "run/checkpoints/best"))


def test_every_seed_diverging_stops_a_drop_seed_run(demo_root, tmp_path, monkeypatch):
    _plant_nan(monkeypatch, {0: (BAD_EPOCH, BAD_STEP + 1), 1: (BAD_EPOCH, BAD_STEP)})
    with pytest.raises(TrainingDiverged) as raised:
        loop.train_and_evaluate(_config(demo_root, tmp_path, "drop_seed"), tmp_path / "run")
    message = str(raised.value)
    assert re.search(rf"training diverged in every seed: seed 0 at epoch 2, step {BAD_STEP + 2} of \d+ .*: loss nan; "
                     rf"seed 1 at epoch 2, step {BAD_STEP + 1} of \d+ .*: loss nan\. Kept the last finite checkpoint "
                     r"\(epoch 1\)", message), message
    assert sorted(p.name for p in (tmp_path / "run/checkpoints/latest").iterdir()) == ["1"]
    assert not (tmp_path / "run/metrics.json").exists()


def _two_seeds(lr: float):
    """Two seeds of a small audio model, their optimiser, and its guarded and unguarded steps."""
    config = base_config()
    config.model.update(modalities="audio", d_model=16, num_heads=2, dropout=0.0)
    config.train.lr = lr
    models = [build_model(config, {"num_classes": 4}, seed) for seed in (0, 1)]
    split = SplitModel.of(models[0])
    optimizer = make_optimizer(config.train, 10, parameter_groups(split.params, models[0].encoder_modules))
    params = stack([SplitModel.of(m).params for m in models])
    other = stack([SplitModel.of(m).other for m in models])
    steps = {guard: make_train_step(split, optimizer, cross_entropy, guard=guard) for guard in (True, False)}
    return params, other, jax.vmap(optimizer.init)(params), steps


def _batches(count: int, nan_at: int | None = None) -> list[dict]:
    """`count` batches of 8 utterances for both seeds; seed 1's MFCCs NaN in batch `nan_at`."""
    rng = np.random.default_rng(0)
    batches = []
    for i in range(count):
        one = {"mfcc": rng.normal(size=(8, 20, 40)).astype(np.float32), "mfcc_length": np.full(8, 20, np.int32),
               "label": rng.integers(0, 4, 8).astype(np.int32), "weight": np.ones(8, np.float32)}
        both = {k: np.stack([v, v]) for k, v in one.items()}
        if i == nan_at:
            both["mfcc"][1] = np.nan
        batches.append(both)
    return batches


def _copy(tree):
    return jax.tree.map(np.array, tree)


def test_the_guarded_step_freezes_a_seed_at_its_first_non_finite_step_and_leaves_the_other_alone():
    params, other, opt_state, steps = _two_seeds(1e-3)
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    batches = _batches(4, nan_at=2)
    plain = [(_copy(params), _copy(other), _copy(opt_state))]  # the unguarded step's states, after 0, 1, ... steps
    for batch in batches:
        *state, _ = steps[False](*(jax.tree.map(jnp.asarray, s) for s in plain[-1]), batch, keys)
        plain.append(_copy(tuple(state)))
    assert not _all_finite(seed_slice(plain[3][0], 1)) and _all_finite(seed_slice(plain[4][0], 0))  # the plant works

    diverged = no_divergence(2)
    for i, batch in enumerate(batches):
        params, other, opt_state, measured, diverged = steps[True](params, other, opt_state, batch, keys, i, diverged)
    assert np.asarray(diverged["step"]).tolist() == [-1, 2] and np.isnan(diverged["loss"][1])
    assert np.isnan(measured["loss"][1]) and np.isfinite(measured["loss"][0])  # a dropped seed measures nothing
    for k, after in ((0, 4), (1, 2)):  # seed 0 trained on; seed 1 kept its state from before step 2
        for mine, theirs in zip(jax.tree.leaves(seed_slice((params, other, opt_state), k)),
                                jax.tree.leaves(seed_slice(plain[after], k)), strict=True):
            np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-6, atol=1e-7)
    (found,) = divergences(jax.device_get(diverged), [0, 1], steps_per_epoch=3)
    assert (found.seed, found.epoch, found.step, found.global_step) == (1, 1, 3, 2)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e39 in float32
def test_an_update_that_overflows_the_state_counts_as_divergence():
    """A learning rate beyond float32 (1e39 is infinite there): loss and gradient are finite at the first
    step, but its update is not; the state before it stays."""
    params, other, opt_state, steps = _two_seeds(1e39)
    before = _copy(params)
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    params, other, opt_state, measured, diverged = steps[True](params, other, opt_state, _batches(1)[0], keys, 0,
                                                               no_divergence(2))
    assert np.isfinite(measured["loss"]).tolist() == [False, False]  # both seeds dropped at once
    assert np.asarray(diverged["step"]).tolist() == [0, 0] and np.isfinite(diverged["loss"]).all()
    assert np.isfinite(diverged["grad_norm"]).all()
    for mine, theirs in zip(jax.tree.leaves(params), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(np.asarray(mine), theirs)
    assert "update made the parameters or optimiser state non-finite" in divergences(
        jax.device_get(diverged), [0, 1], 5)[0].cause()


def test_train_nonfinite_is_a_checked_choice():
    config = demo.get_config()
    config.train.nonfinite = "skip"
    with pytest.raises(ConfigError, match=r"train.nonfinite = 'skip': must be one of \['drop_seed', 'stop'\]"):
        validate(config)


def test_a_checkpoint_from_before_the_divergence_record_resumes_with_none(tmp_path):
    """Runs saved before ``diverged`` joined the loop state resume, with no seed diverged."""
    checkpoints = RunCheckpoints(tmp_path)
    old = {"params": {"w": jnp.ones(3)}, "epoch": np.array(2, np.int32)}
    checkpoints.save_latest(2, old)
    checkpoints.close()
    like = {**old, "diverged": {"step": jnp.full(2, -1, jnp.int32)}}
    restored = RunCheckpoints(tmp_path).restore_latest(like)
    assert int(restored["epoch"]) == 2 and restored["diverged"]["step"].tolist() == [-1, -1]
