"""Two JAX processes on this machine (CPU collectives) train one run together, as two hosts would.

Each process reads its own share of every global batch; together they must take exactly the steps of
a one-process run over the same global batches (here: one process with two CPU devices, so both runs
split every batch the same way), end with its parameters, and write each file once. The two
processes read the corpus from tensorflow-datasets records (process 0 writes them, the other waits)
and each computes the MFCCs of its own half of the records, shared through the feature cache; the
one-process run reads the folder.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess

import jax
import numpy as np

from mer_jax.inference import EmotionRecognizer

TINY = ["--config=configs/demo.py", "--config.train.epochs=2", "--config.train.batch_size=12",
        "--config.features.max_frames=60", "--config.model.d_model=32", "--config.text.hidden=32",
        "--config.model.dropout=0.3"]


TIMEOUT = 900  # seconds for one training command
PORT_TAKEN = "Failed to start RPC server"  # process 0's error when another program took the port meanwhile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_together(command: list[str], logs: pathlib.Path, attempts: int = 3) -> list[tuple[str, str]]:
    """Run `command` as process 0 and 1 of a two-process run; (stdout, stderr) of each.

    The coordinator's port is free when picked but only bound when process 0 starts, so another program
    may take it in between: then process 0 fails at once, process 1 would wait for a coordinator that
    never comes, and the pair is started again on another port. Output goes to files (a full pipe would
    stall a process, and with it the other); any process still running at the end is killed."""
    for attempt in range(attempts):
        port = _free_port()
        files = [(logs / f"attempt{attempt}_process{i}.out", logs / f"attempt{attempt}_process{i}.err")
                 for i in range(2)]
        processes = []
        try:
            for i, (out, err) in enumerate(files):
                with out.open("w") as stdout, err.open("w") as stderr:
                    processes.append(subprocess.Popen(
                        [*command, "--distributed", f"--coordinator=localhost:{port}", "--num_processes=2",
                         f"--process_id={i}"], env=_env(), stdout=stdout, stderr=stderr, text=True))
            processes[0].wait(timeout=TIMEOUT)
            if processes[0].returncode != 0 and PORT_TAKEN in files[0][1].read_text():
                continue  # (the finally clause stops process 1)
            processes[1].wait(timeout=TIMEOUT)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        outputs = [(out.read_text(), err.read_text()) for out, err in files]
        for p, (_, err) in zip(processes, outputs):
            assert p.returncode == 0, err[-3000:]
        return outputs
    raise AssertionError(f"the coordinator's port was taken {attempts} times in a row")


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", **extra)


def test_two_processes_train_like_one(demo_root, tmp_path):
    common = [*TINY, f"--config.data.root={demo_root}"]
    single = subprocess.run([shutil.which("mer-jax"), "train", *common, f"--workdir={tmp_path / 'one'}",
                             f"--config.data.cache_dir={tmp_path / 'cache'}"],
                            env=_env(XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=2"), capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-3000:]

    records = ["--config.data.tfds=mer_iemocap", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
               f"--config.data.cache_dir={tmp_path / 'shared_cache'}"]
    outputs = _train_together([shutil.which("mer-jax"), "train", *common, *records, f"--workdir={tmp_path / 'two'}"],
                              tmp_path)

    one, two = tmp_path / "one", tmp_path / "two"
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert first["folds"][0]["best_epoch"] == second["folds"][0]["best_epoch"]
    assert first["folds"][0]["sizes"] == second["folds"][0]["sizes"]
    params = [jax.tree.leaves(jax.device_get(EmotionRecognizer.from_run(d).params)) for d in (one, two)]
    assert len(params[0]) == len(params[1])
    assert max(float(np.abs(a - b).max()) for a, b in zip(*params)) < 1e-5
    assert first["folds"][0]["test"]["confusion_matrix"] == second["folds"][0]["test"]["confusion_matrix"]
    events = [list((run / "tensorboard").glob("events.out.tfevents.*")) for run in (two, tmp_path / "one")]
    assert len(events[0]) == len(events[1]) > 0  # only process 0 writes: the files one process writes
    assert "training" not in outputs[1][1]  # and only process 0 shows progress
    # Each process computed its half of the MFCCs; the halves became one cache entry, equal to the
    # one-process run's MFCCs of the folder.
    n = sum(first["folds"][0]["sizes"].values())
    for i, (out, _) in enumerate(outputs):
        share = np.array_split(np.arange(n), 2)[i]
        assert f"MFCC: process {i} of 2 computes utterances {share[0]}-{share[-1]} of {n}" in out
    merged, = (tmp_path / "shared_cache").glob("mfcc-*.npz")
    alone, = (tmp_path / "cache").glob("mfcc-*.npz")
    with np.load(merged) as a, np.load(alone) as b:
        np.testing.assert_array_equal(a["lengths"], b["lengths"])
        np.testing.assert_allclose(a["frames"], b["frames"], atol=1e-5)
