"""A run killed mid-training resumes from its last checkpoint and ends exactly like an uninterrupted run."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def _command(workdir, demo_root, cache):
    return [shutil.which("mer-jax"), "train", "--config=configs/demo.py", f"--workdir={workdir}",
            f"--config.data.root={demo_root}", f"--config.data.cache_dir={cache}", "--config.train.epochs=5",
            "--config.train.batch_size=16", "--config.features.max_frames=60", "--config.model.d_model=32",
            "--config.text.hidden=32"]


def test_killed_run_resumes_and_matches_uninterrupted_run(demo_root, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    cache = tmp_path / "cache"
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    done = subprocess.run(_command(whole, demo_root, cache), cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    process = subprocess.Popen(_command(resumed, demo_root, cache), cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (resumed / "checkpoints/latest/2").exists():  # Orbax renames a checkpoint only when complete
        assert process.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (resumed / "metrics.json").exists()

    again = subprocess.run(_command(resumed, demo_root, cache), cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (whole, resumed))
    assert first["folds"][0]["test"] == second["folds"][0]["test"]
    assert first["folds"][0]["validation"] == second["folds"][0]["validation"]
    assert first["folds"][0]["best_epoch"] == second["folds"][0]["best_epoch"]
    assert (whole / "test_predictions.csv").read_text() == (resumed / "test_predictions.csv").read_text()


def test_a_rerun_with_another_training_config_is_refused_unless_restarted(demo_root, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    command = [*_command(tmp_path / "run", demo_root, tmp_path / "cache"), "--config.train.epochs=2"]

    def run(*extra):
        return subprocess.run([*command, *extra], cwd=tmp_path, env=env, capture_output=True, text=True)

    assert run().returncode == 0
    changed = run("--config.train.lr=0.01", "--config.model.dropout=0.5")
    assert changed.returncode != 0
    assert "model.dropout, train.lr differ" in changed.stderr and "--restart" in changed.stderr
    harmless = run("--config.train.log_every_steps=3")  # changes no number: resumes (nothing left to train)
    assert harmless.returncode == 0 and "resuming" in harmless.stdout
    restarted = run("--config.train.lr=0.01", "--restart")
    assert restarted.returncode == 0 and "resuming" not in restarted.stdout and "restart: removing" in restarted.stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr"] == 0.01
