"""Throughput of the Flax text encoders against transformers' PyTorch models of the same config.

For BERT and DeBERTa-v3 (random weights, copied from the PyTorch model into the Flax one through the
checkpoint loader), prints sequences/s for a forward pass (eval mode) and for forward+backward (train
mode, dropout on, gradient of mean(h^2) w.r.t. all parameters), Flax under `jax.jit` and PyTorch
eager, and the ratio Flax / PyTorch (> 1: Flax is faster). Each number is the best of several steps,
the two frameworks alternating step by step. Both run on the same machine: PyTorch on CUDA when
available, JAX on its default backend.

    python benchmarks/encoder_throughput.py                    # small configs (CPU friendly)
    python benchmarks/encoder_throughput.py --size base        # bert-base-uncased / deberta-v3-base
    python benchmarks/encoder_throughput.py --bf16             # bfloat16 compute in both

Imports neither TensorFlow nor anything from the hub.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from flax import nnx  # noqa: E402

from timing import best_step_seconds, seconds  # noqa: E402

from mer_jax import encoders  # noqa: E402
from mer_jax.host_memory import keep_freed_host_memory  # noqa: E402

DEBERTA_V3 = dict(relative_attention=True, position_buckets=256, max_relative_positions=-1,
                  pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm",
                  position_biased_input=False, type_vocab_size=0, vocab_size=128100, layer_norm_eps=1e-7)
SIZES = {
    # toy: a smoke run's shape (the tests run every benchmark at it), not a measurement
    "toy": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=1000),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def hf_configs(size: str) -> dict[str, transformers.PretrainedConfig]:
    shape = SIZES[size]
    return {
        "bert": transformers.BertConfig(**shape),
        "deberta-v3": transformers.DebertaV2Config(**(DEBERTA_V3 | shape)),
    }


def add_host_memory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-host-memory", action="store_true",
                        help="keep freed host memory in the process, as mer-jax does (mer_jax/host_memory.py); "
                             "it acts on both frameworks (default: glibc's malloc as it is)")


def host_memory(args) -> str:
    """Applies the host-memory choice (before anything runs) and names it for the printed header."""
    if not args.keep_host_memory:
        return "glibc malloc defaults"
    return "freed host memory kept" if keep_freed_host_memory() else "glibc malloc defaults (could not change them)"


def torch_passes(model, ids, mask, bf16: bool, device: str) -> dict:
    ids, mask = torch.tensor(ids, device=device), torch.tensor(mask, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    def forward():
        model.eval()
        with torch.inference_mode(), autocast():
            model(ids, mask)
        sync()

    def forward_backward():
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast():
            loss = model(ids, mask).last_hidden_state.float().pow(2).mean()
        loss.backward()
        sync()

    return {"forward": forward, "forward+backward": forward_backward}


def flax_passes(encoder, ids, mask) -> dict:
    ids, mask = jnp.asarray(ids), jnp.asarray(mask)

    encoder.eval()
    eval_graph, eval_state = nnx.split(encoder)
    forward = jax.jit(lambda state, ids, mask: nnx.merge(eval_graph, state)(ids, mask).last_hidden_state)

    encoder.train()
    train_graph, train_state = nnx.split(encoder)

    def loss(model, ids, mask):
        return jnp.mean(model(ids, mask).last_hidden_state.astype(jnp.float32) ** 2)

    @jax.jit
    def forward_backward(state, ids, mask):
        return nnx.value_and_grad(loss)(nnx.merge(train_graph, state), ids, mask)

    return {"forward": (forward, (eval_state, ids, mask)), "forward+backward": (forward_backward, (train_state, ids, mask))}


def xla_memory_gib(jitted, args) -> float:
    """XLA's estimate of a compiled function's buffers (arguments, outputs, temporaries), GiB."""
    memory = jitted.lower(*args).compile().memory_analysis()
    if memory is None:
        return float("nan")
    return (memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes) / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--models", nargs="+", default=["bert", "deberta-v3"], choices=["bert", "deberta-v3"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute (float32 params) in both")
    add_host_memory_option(parser)
    args = parser.parse_args()
    memory = host_memory(args)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} on {device} "
          f"({torch.get_num_threads()} threads); batch {args.batch} x length {args.length}; size {args.size}; "
          f"{'bfloat16' if args.bf16 else 'float32'} compute; {memory}")
    print(f"{'model':<12}{'pass':<18}{'flax seq/s':>12}{'torch seq/s':>13}{'flax/torch':>12}"
          f"{'flax 1st s':>12}{'torch 1st s':>13}{'flax GiB':>10}{'torch GiB':>11}")

    rng = np.random.default_rng(0)
    for name, config in hf_configs(args.size).items():
        if name not in args.models:
            continue
        torch.manual_seed(0)
        torch_model = transformers.AutoModel.from_config(config).to(device)
        encoder = encoders.from_config(config, rngs=nnx.Rngs(0), dtype=jnp.bfloat16 if args.bf16 else jnp.float32)
        encoders.load_weights(encoder, {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()})

        ids = rng.integers(1, config.vocab_size, (args.batch, args.length))
        lengths = rng.integers(args.length // 2, args.length + 1, args.batch)
        mask = (np.arange(args.length)[None] < lengths[:, None]).astype(np.int64)
        ours, theirs = flax_passes(encoder, ids, mask), torch_passes(torch_model, ids, mask, args.bf16, device)
        for label, (jitted, jax_args) in ours.items():
            def flax_call(jitted=jitted, jax_args=jax_args):
                jax.block_until_ready(jitted(*jax_args))

            # First calls (JAX: trace + compile), then memory: XLA's estimate for JAX; PyTorch's
            # allocator peak on a GPU (on a CPU it has none to read).
            firsts = seconds(flax_call), seconds(theirs[label])
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                theirs[label]()
                torch_gib = torch.cuda.max_memory_allocated() / 2**30
            else:
                torch_gib = float("nan")
            best = best_step_seconds({"flax": flax_call, "torch": theirs[label]}, args.steps, args.warmup)
            flax_rate, torch_rate = args.batch / best["flax"], args.batch / best["torch"]
            print(f"{name:<12}{label:<18}{flax_rate:>12.1f}{torch_rate:>13.1f}{flax_rate / torch_rate:>12.2f}"
                  f"{firsts[0]:>12.2f}{firsts[1]:>13.2f}{xla_memory_gib(jitted, jax_args):>10.2f}{torch_gib:>11.2f}",
                  flush=True)

if __name__ == "__main__":
    main()
