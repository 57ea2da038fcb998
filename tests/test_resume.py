"""A run killed mid-training resumes from its last checkpoint and ends exactly like an uninterrupted run.

The kill is deterministic: the run to be killed is `mer-jax train` started through a small driver that
waits until the latest checkpoint of epoch `KILLED_AFTER` is complete on disk and then, two steps into
the next epoch, SIGKILLs its own process (nothing in mer_jax knows of it: the driver wraps two of the
loop's functions). So the resumed run always starts from that checkpoint and redoes the lost steps.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

from test_cli import TINY, mer_jax_here

REPO = pathlib.Path(__file__).resolve().parent.parent
KILLED_AFTER, KILLED_AT_STEP = 2, 2  # epochs done; step of the next epoch where the process dies
TIMEOUT = 900  # seconds for one training command

KILL_DRIVER = """
import os, signal, sys
from mer_jax.training import checkpoints, loop

killed_after, killed_at_step = int(sys.argv[1]), int(sys.argv[2])
save_latest, train_batches = checkpoints.RunCheckpoints.save_latest, loop._train_batches

def save_latest_and_wait(self, epoch, state):
    save_latest(self, epoch, state)
    if epoch == killed_after:
        self.latest.wait_until_finished()  # complete on disk (Orbax renames its temporary folder)

def batches_then_kill(config, examples, epoch):
    for i, batch in enumerate(train_batches(config, examples, epoch)):
        if epoch == killed_after and i == killed_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch

checkpoints.RunCheckpoints.save_latest, loop._train_batches = save_latest_and_wait, batches_then_kill
import mer_jax.cli
sys.argv = ["mer-jax", *sys.argv[3:]]
mer_jax.cli.run()
"""


def _train_args(workdir, demo_root, cache):
    return ["train", "--config=configs/demo.py", f"--workdir={workdir}",
            f"--config.data.root={demo_root}", f"--config.data.cache_dir={cache}", "--config.train.epochs=3",
            "--config.train.batch_size=16", "--config.features.max_frames=60", "--config.model.d_model=32",
            "--config.text.hidden=32"]


def test_killed_run_resumes_and_matches_uninterrupted_run(demo_root, demo_cache, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    cache = demo_cache
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    done = mer_jax_here(*_train_args(whole, demo_root, cache))
    assert done.returncode == 0, done.stderr[-3000:]

    killed = subprocess.run([sys.executable, "-c", KILL_DRIVER, str(KILLED_AFTER), str(KILLED_AT_STEP),
                             *_train_args(resumed, demo_root, cache)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    latest = resumed / "checkpoints" / "latest"
    assert sorted(p.name for p in latest.iterdir()) == [str(KILLED_AFTER - 1), str(KILLED_AFTER)]
    assert not (resumed / "metrics.json").exists()

    again = mer_jax_here(*_train_args(resumed, demo_root, cache))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {resumed} after epoch {KILLED_AFTER}" in again.stdout
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (whole, resumed))
    assert first["folds"][0]["test"] == second["folds"][0]["test"]
    assert first["folds"][0]["validation"] == second["folds"][0]["validation"]
    assert first["folds"][0]["best_epoch"] == second["folds"][0]["best_epoch"]
    assert first["folds"][0]["history"] == second["folds"][0]["history"]
    assert (whole / "test_predictions.csv").read_text() == (resumed / "test_predictions.csv").read_text()


def test_a_rerun_with_another_training_config_is_refused_unless_restarted(demo_run, demo_root, demo_cache, tmp_path):
    shutil.copytree(demo_run, tmp_path / "run")  # a finished run, trained with these flags
    command = ["train", "--config=configs/demo.py", f"--workdir={tmp_path / 'run'}", f"--config.data.root={demo_root}",
               f"--config.data.cache_dir={demo_cache}", *TINY]

    def run(*extra):
        return mer_jax_here(*command, *extra, cwd=tmp_path)

    changed = run("--config.train.lr=0.01", "--config.model.dropout=0.5")
    assert changed.returncode != 0
    assert "model.dropout, train.lr differ" in changed.stderr and "--restart" in changed.stderr
    harmless = run("--config.train.log_every_steps=3")  # changes no number: resumes (nothing left to train)
    assert harmless.returncode == 0 and "resuming" in harmless.stdout
    restarted = run("--config.train.lr=0.01", "--restart")
    assert restarted.returncode == 0 and "resuming" not in restarted.stdout and "restart: removing" in restarted.stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr"] == 0.01
