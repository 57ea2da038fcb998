"""The dynamic-fusion audio branch's BiLSTM (Eq. 1) against PyTorch's `nn.LSTM` over packed sequences.

mer_jax's `BiLSTM` (one input matmul for every frame and both directions, then a scan over time that
advances both directions together) under `jax.jit`, against `nn.LSTM(bidirectional=True)` fed
through `pack_padded_sequence` / `pad_packed_sequence`, the usual PyTorch code. Same weights (copied
across) and inputs: B utterances of T frames of 40 MFCC, lengths drawn from T/2..T (one of length T).
It checks that both give the same outputs on the real frames (within 1e-4, or it stops), then prints
milliseconds per batch for the forward pass (inference) and forward+backward (loss = mean square of
the outputs, gradients w.r.t. the input and every weight), the first JAX call (trace + compile), and
PyTorch / JAX (> 1: JAX faster). Every time is the best of ``--steps`` calls after ``--warmup``, the
frameworks alternating.

    python benchmarks/bilstm_throughput.py                 # 40 -> 2 x 128, B = 64, T = 300
    python benchmarks/bilstm_throughput.py --bf16          # bfloat16 compute in both
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from encoder_throughput import add_host_memory_option, host_memory, xla_memory_gib  # noqa: E402
from timing import best_step_seconds, seconds  # noqa: E402

from mer_jax.layers.bilstm import BiLSTM  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=128, help="per direction")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute in both (float32 weights)")
    add_host_memory_option(parser)
    args = parser.parse_args()
    memory = host_memory(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = jnp.bfloat16 if args.bf16 else jnp.float32
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} on {device} "
          f"({torch.get_num_threads()} threads); BiLSTM {args.features} -> 2 x {args.hidden}, batch {args.batch} x "
          f"{args.frames} frames; {'bfloat16' if args.bf16 else 'float32'} compute; best of {args.steps}; {memory}")

    rng = np.random.default_rng(0)
    lengths = rng.integers(args.frames // 2, args.frames + 1, args.batch)
    lengths[0] = args.frames
    frames = rng.normal(size=(args.batch, args.frames, args.features)).astype(np.float32)
    ours = BiLSTM(args.features, args.hidden, rngs=nnx.Rngs(0))
    theirs = torch.nn.LSTM(args.features, args.hidden, batch_first=True, bidirectional=True).to(device)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.torch_state_dict().items()})

    graph, state = nnx.split(ours)
    state = jax.tree.map(lambda w: w.astype(dtype), state)  # as the train step computes in model.dtype
    x, n = jax.device_put(frames.astype(dtype)), jax.device_put(lengths.astype(np.int32))
    forward = jax.jit(lambda state, x, n: nnx.merge(graph, state)(x, n))

    @jax.jit
    def forward_backward(state, x, n):
        return jax.grad(lambda s, x: jnp.mean(nnx.merge(graph, s)(x, n).astype(jnp.float32) ** 2), (0, 1))(state, x)

    xt = torch.tensor(frames, device=device)
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16)  # noqa: E731
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def torch_run(x):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, _ = theirs(packed)
        return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=args.frames)[0]

    def torch_forward():
        with torch.inference_mode(), autocast():
            out = torch_run(xt)
        sync()
        return out

    def torch_forward_backward():
        theirs.zero_grad(set_to_none=True)
        x = xt.clone().requires_grad_()
        with autocast():
            loss = torch_run(x).float().pow(2).mean()
        loss.backward()
        sync()

    firsts = {name: seconds(lambda fn=fn: jax.block_until_ready(fn(state, x, n)))
              for name, fn in (("forward", forward), ("forward+backward", forward_backward))}

    real = (np.arange(args.frames)[None] < lengths[:, None])[..., None]
    gap = np.abs(np.asarray(forward(state, x, n), np.float32) - torch_forward().float().cpu().numpy()) * real
    tolerance = 5e-2 if args.bf16 else 1e-4
    print(f"parity (forward, real frames): max |JAX - PyTorch| = {gap.max():.2e} (tolerance {tolerance})")
    if gap.max() > tolerance:
        raise SystemExit("the two BiLSTMs disagree: timings would compare different computations")

    rows = {}
    for name, jax_fn, torch_fn in (("forward", lambda: forward(state, x, n).block_until_ready(), torch_forward),
                                   ("forward+backward", lambda: jax.block_until_ready(forward_backward(state, x, n)),
                                    torch_forward_backward)):
        rows[name] = best_step_seconds({"jax": jax_fn, "torch": torch_fn}, args.steps, args.warmup)
    memory = {"forward": xla_memory_gib(forward, (state, x, n)),
              "forward+backward": xla_memory_gib(forward_backward, (state, x, n))}
    print(f"{'pass':<20}{'JAX ms':>10}{'PyTorch ms':>12}{'PyTorch/JAX':>13}{'JAX 1st call s':>16}{'JAX GiB (XLA)':>15}")
    for name, best in rows.items():
        print(f"{name:<20}{1e3 * best['jax']:>10.1f}{1e3 * best['torch']:>12.1f}{best['torch'] / best['jax']:>13.2f}"
              f"{firsts[name]:>16.2f}{memory[name]:>15.3f}")


if __name__ == "__main__":
    main()
