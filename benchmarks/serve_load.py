"""`mer-jax serve` under load: requests/s and latency of its HTTP API, one client against eight at once.

The server (`mer_jax.serve.serve`) runs in a process of its own on 127.0.0.1; clients call ``/predict``
through `gradio_client` as scripts do (each request uploads its wav). In one run, after a warm-up that
compiles the batch shapes:

    (a) ``--requests`` requests from 1 client thread, one after another (the baseline),
    (b) the same requests from ``--threads`` client threads at once,

printing for each: requests/s, p50 and p95 latency, failed requests (must be 0) and the mean size of the
batches the server scored (from its `Batcher`); then (b)/(a) requests/s: what scoring the requests that
wait together in one batch buys under load. The requests cycle through the corpus' utterances (wav and
transcript).

    python benchmarks/serve_load.py                               # trains and exports the tiny demo model first
    python benchmarks/serve_load.py --model=models/demo --data=data/demo_iemocap

Without ``--model`` the demo corpus (``--data``, written if missing) and a tiny fused model trained on it
(`mer-jax train` + `mer-jax export`, about a minute on a CPU; the training needs TensorFlow) go to
``--workdir``, reused when it already holds them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
from gradio_client import Client, handle_file

from mer_jax.config import load_run_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
# tests/test_cli.py's TINY training: a model that trains in seconds and serves like a real one
TINY = ["--config.train.epochs=2", "--config.train.batch_size=16", "--config.features.max_frames=80",
        "--config.model.d_model=32", "--config.text.hidden=32"]
# The server process: serves until its stdin closes; each line it reads asks for the sizes of the batches
# scored since the last line.
SERVER = """
import json, sys
from mer_jax.serve import serve
app = serve(sys.argv[1], port=int(sys.argv[2]), max_batch_size=int(sys.argv[3]), block=False)
print("ready", flush=True)
for _ in sys.stdin:
    print("batches " + json.dumps(app.batcher.batch_sizes), flush=True)
    app.batcher.batch_sizes.clear()
app.close()
"""


def tiny_model(workdir: pathlib.Path, data: pathlib.Path) -> pathlib.Path:
    """An exported tiny fused model trained on `data` in `workdir` (kept there and reused)."""
    model = workdir / "model"
    if not (model / "model.safetensors").exists():
        mer_jax = [shutil.which("mer-jax") or sys.exit("mer-jax is not installed: pip install -e .")]
        run = workdir / "run"
        subprocess.run([*mer_jax, "train", "--config=configs/demo.py", f"--workdir={run}", f"--config.data.root={data}",
                        *TINY], cwd=ROOT, check=True)
        subprocess.run([*mer_jax, "export", f"--workdir={run}", f"--out={model}"], cwd=ROOT, check=True)
    return model


class Server:
    """`serve(model)` in a process of its own, on a free port of 127.0.0.1."""

    def __init__(self, model, max_batch_size: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.process = subprocess.Popen([sys.executable, "-c", SERVER, str(model), str(port), str(max_batch_size)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._line("ready")

    def _line(self, start: str) -> str:
        for line in self.process.stdout:
            if line.startswith(start):
                return line[len(start):]
        sys.exit(f"the server stopped (exit status {self.process.wait()})")

    def batch_sizes(self) -> dict[int, int]:
        """Batch size -> how many batches of that size the server scored since the last call."""
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return {int(size): n for size, n in json.loads(self._line("batches ")).items()}

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def load(url: str, items: list[tuple[str, str]], threads: int) -> dict:
    """Send every item once from `threads` client threads (each its own `Client`); time each request."""
    clients = [Client(url, verbose=False) for _ in range(threads)]
    pending = iter(items)

    def client_loop(client) -> tuple[list[float], int]:
        seconds, failed = [], 0
        for audio, text in iter(lambda: next(pending, None), None):  # the threads share one iterator
            start = time.perf_counter()
            try:
                client.predict(handle_file(audio), text, api_name="/predict")
            except Exception as e:  # noqa: BLE001 (a failed request is counted and shown, the run goes on)
                failed += 1
                print(f"  failed: {audio}: {e}")
            seconds.append(time.perf_counter() - start)
        return seconds, failed

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(client_loop, clients))
    wall = time.perf_counter() - start
    seconds = np.array([s for r in results for s in r[0]])
    return {"requests": len(seconds), "failed": sum(r[1] for r in results), "requests_per_s": len(seconds) / wall,
            "p50_ms": 1000 * np.percentile(seconds, 50), "p95_ms": 1000 * np.percentile(seconds, 95)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a run or an exported model folder (default: train the tiny demo model)")
    parser.add_argument("--data", help="an IEMOCAP-layout corpus whose utterances are sent (default: the demo "
                                       "corpus, written to WORKDIR/demo)")
    parser.add_argument("--workdir", help="where the demo corpus and tiny model go (default: a temporary folder)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=8, help="the server's (serve(max_batch_size=...))")
    parser.add_argument("--warmup", type=int, default=48, help="requests sent before timing (compiles the shapes)")
    args = parser.parse_args()
    # after --help: the readers decode audio (soundfile), which machines that only benchmark may lack
    from mer_jax.data.corpora import read_corpus  # noqa: PLC0415
    from mer_jax.data.demo import write_demo_corpus  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as temporary:
        workdir = pathlib.Path(args.workdir or temporary)
        data = pathlib.Path(args.data or workdir / "demo")
        if args.data is None and not (data / "README.txt").exists():
            write_demo_corpus(data, seed=3, dialogues_per_session=2, turns_per_dialogue=12)
        model = pathlib.Path(args.model or tiny_model(workdir, data))
        config = load_run_config(next(p / "config.json" for p in (model, model.parent) if (p / "config.json").exists()))
        config.data.root = str(data)
        utterances, _ = read_corpus(config.data)
        items = [(u.audio_path, u.transcript) for u in utterances]
        timed = list(itertools.islice(itertools.cycle(items), args.requests))

        server = Server(model, args.max_batch_size)
        try:
            for threads in (args.threads, 1):  # compile the shapes both loads meet
                load(server.url, items[: args.warmup], threads)
            server.batch_sizes()
            rows = []
            for name, threads in (("(a) 1 client", 1), (f"(b) {args.threads} clients", args.threads)):
                result = load(server.url, timed, threads)
                sizes = server.batch_sizes()
                result["mean_batch"] = sum(size * n for size, n in sizes.items()) / sum(sizes.values())
                rows.append((name, result))
        finally:
            server.close()

    print(f"\nmer-jax serve, {model}: {args.requests} requests to /predict per row (gradio_client, wav upload + "
          f"transcript), server max_batch_size={args.max_batch_size}, {os.cpu_count()} CPUs")
    print(f"{'load':<16} {'requests/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'failed':>7} {'mean batch':>11}")
    for name, r in rows:
        print(f"{name:<16} {r['requests_per_s']:>10.1f} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['failed']:>7d} "
              f"{r['mean_batch']:>11.2f}")
    print(f"(b)/(a) requests/s: {rows[1][1]['requests_per_s'] / rows[0][1]['requests_per_s']:.2f}x")
    if any(r["failed"] for _, r in rows):
        sys.exit("some requests failed")


if __name__ == "__main__":
    main()
