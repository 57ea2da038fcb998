"""Serving latency: the jitted JAX evaluation step against the SavedModel export (mer_jax/savedmodel.py) in TensorFlow.

The model is configs/demo.py's fused dynamic-fusion model (BiLSTM over 40 MFCC x 300 frames, a one-layer
Transformer over 32 tokens, d_model 128, 8-head cross-modal attention, 6 classes), built with random
weights (nothing trained: the latency does not depend on the weights). Both sides score the same batches
of random frames and tokens (frame lengths drawn from 150..300, token lengths from 8..32):

* JAX: `make_eval_step`, what `EmotionRecognizer.predict_examples` runs, one jitted call per batch;
* SavedModel: the ``serving_default`` signature of `mer_jax.savedmodel.save`'s export, loaded back with
  ``tf.saved_model.load``, free batch and lengths (one XlaCallModule op run by TensorFlow's XLA);
* TFLite (with ``--tflite``): a fixed-shape export (``batch_size``) converted by ``tf.lite.TFLiteConverter``,
  run by ``tf.lite.Interpreter``.

It checks that each agrees with JAX within 1e-4 (or stops), then prints milliseconds per batch at each
``--batches`` size: the first call (JAX: trace + compile; TensorFlow: shape refinement + XLA compile) and
the best of ``--steps`` calls after ``--warmup``, the runtimes alternating call by call, and the ratio
runtime / JAX (> 1: JAX faster). Unlike the other benchmarks, this one needs TensorFlow (imported after
the arguments are read, so ``--help`` runs without it).

    python benchmarks/savedmodel_latency.py                  # batch 1 and 32, demo sizes
    python benchmarks/savedmodel_latency.py --tflite         # and TFLite
    python benchmarks/savedmodel_latency.py --frames 40 --tokens 8 --d-model 16 --steps 2   # a toy run
"""

from __future__ import annotations

import argparse
import os
import pathlib
import runpy
import tempfile
import time

import numpy as np
from timing import best_step_seconds, seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEMO_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.py"
VOCAB_SIZE = 1000


def random_batch(rng, size: int, frames: int, tokens: int, n_mfcc: int) -> dict[str, np.ndarray]:
    """A padded batch as `numpy_batches` makes one: frame lengths from frames/2..frames, tokens from 8..tokens."""
    frame_lengths = rng.integers(frames // 2, frames + 1, size)
    real_tokens = np.arange(tokens)[None] < rng.integers(min(8, tokens), tokens + 1, size)[:, None]
    real_frames = np.arange(frames)[None, :, None] < frame_lengths[:, None, None]
    return {"mfcc": (rng.normal(size=(size, frames, n_mfcc)) * real_frames).astype(np.float32),
            "mfcc_length": frame_lengths.astype(np.int32),
            "input_ids": (rng.integers(5, VOCAB_SIZE, (size, tokens)) * real_tokens).astype(np.int32),
            "attention_mask": real_tokens.astype(np.int32)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--frames", type=int, default=0, help="MFCC frames (default: the demo config's max_frames)")
    parser.add_argument("--tokens", type=int, default=0, help="tokens (default: the demo config's max_tokens)")
    parser.add_argument("--d-model", type=int, default=0, help="model width (default: the demo config's)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tflite", action="store_true", help="also a fixed-shape export run by TFLite")
    args = parser.parse_args()

    import jax

    from mer_jax.data.features import frame_features
    from mer_jax.data.tf_runtime import tf
    from mer_jax.inference import EmotionRecognizer
    from mer_jax.models.registry import build_model
    from mer_jax.savedmodel import save
    from mer_jax.training.steps import SplitModel, make_eval_step

    config = runpy.run_path(str(DEMO_CONFIG))["get_config"]()
    config.features.max_frames = args.frames or config.features.max_frames
    config.features.max_tokens = args.tokens or config.features.max_tokens
    if args.d_model:
        config.model.d_model = config.text.hidden = args.d_model
    frames, tokens, n_mfcc = config.features.max_frames, config.features.max_tokens, frame_features(config.features)
    split = SplitModel.of(build_model(config, {"num_classes": 6, "vocab_size": VOCAB_SIZE}))
    recognizer = EmotionRecognizer(config, None, split, split.params, split.other)
    step = make_eval_step(split)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, tensorflow {tf.__version__} (CPU); "
          f"configs/demo.py's model, random weights, {sum(x.size for x in jax.tree.leaves(split.params)):,} parameters; "
          f"{n_mfcc} MFCC x {frames} frames, {tokens} tokens; best of {args.steps} after {args.warmup}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        signature = tf.saved_model.load(str(save(recognizer, pathlib.Path(tmp) / "free"))).signatures["serving_default"]
        print(f"export + load of the SavedModel: {time.perf_counter() - start:.1f} s")
        runners = {}
        if args.tflite:
            for size in args.batches:
                converter = tf.lite.TFLiteConverter.from_saved_model(str(save(recognizer, pathlib.Path(tmp) / str(size),
                                                                              batch_size=size)))
                runners[size] = tf.lite.Interpreter(model_content=converter.convert()).get_signature_runner()

        rng = np.random.default_rng(0)
        rows = []
        for size in args.batches:
            batch = random_batch(rng, size, frames, tokens, n_mfcc)
            on_device, as_tf = jax.device_put(batch), {k: tf.constant(v) for k, v in batch.items()}
            fns = {"JAX": lambda b=on_device: np.asarray(step(split.params, split.other, b)),
                   "SavedModel": lambda b=as_tf: signature(**b)["probabilities"].numpy()}
            if size in runners:
                fns["TFLite"] = lambda b=batch, runner=runners[size]: runner(**b)["probabilities"]
            firsts = {name: seconds(fn) for name, fn in fns.items()}
            expected = fns["JAX"]()
            for name, fn in list(fns.items())[1:]:
                gap = float(np.abs(fn() - expected).max())
                print(f"parity at batch {size}: max |{name} - JAX| = {gap:.2e} (tolerance 1e-4)")
                if gap > 1e-4:
                    raise SystemExit(f"{name} disagrees with JAX: timings would compare different computations")
            rows.append((size, firsts, best_step_seconds(fns, args.steps, args.warmup)))

    names = list(rows[0][1])
    print(f"{'batch':>6}{'runtime':>12}{'ms/batch':>10}{'ms/sample':>11}{'/ JAX':>8}{'1st call s':>12}")
    for size, firsts, best in rows:
        for name in names:
            print(f"{size:>6}{name:>12}{1e3 * best[name]:>10.2f}{1e3 * best[name] / size:>11.3f}"
                  f"{best[name] / best['JAX']:>8.2f}{firsts[name]:>12.2f}")


if __name__ == "__main__":
    main()
