"""Where bert-base's bf16 forward+backward spends its time on a GPU: variants, same process.

The record of the probe behind probe.log (kept with its log, not a maintained benchmark):
    python benchmarks/results/2026-11-27-h100-rerun/probe.py     # PROBE_SIZE=small for a CPU smoke run
"""
import os
import statistics
import sys
import time

os.environ.setdefault("USE_TF", "0")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))  # benchmarks/
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from flax import nnx  # noqa: E402

from encoder_throughput import flax_passes, hf_configs, torch_passes  # noqa: E402
from mer_jax import encoders  # noqa: E402
from mer_jax.encoders import layers  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ORIGINAL_ATTENTION, ORIGINAL_DRAWS = layers.dot_product_attention, layers._draws_masks


def cudnn_attention(q, k, v, mask, *, scale, bias=0.0, dropout=None):
    lengths = mask.sum(-1).astype(jnp.int32)
    out = jax.nn.dot_product_attention(q, k, v, scale=scale, query_seq_lengths=None,
                                       key_value_seq_lengths=lengths, implementation="cudnn")
    return out, None


def xla_attention(q, k, v, mask, *, scale, bias=0.0, dropout=None):
    out = jax.nn.dot_product_attention(q, k, v, scale=scale, mask=mask[:, None, None, :], implementation="xla")
    return out, None


def run(*a, **k):
    try:
        measure(*a, **k)
    except Exception as e:  # noqa: BLE001
        print(a, k, "failed:", repr(e)[:300], flush=True)
    layers.dot_product_attention, layers._draws_masks = ORIGINAL_ATTENTION, ORIGINAL_DRAWS


def measure(tag, batch=32, length=128, attention=None, scan=True, dropout=True, steps=12):
    layers.dot_product_attention = attention or ORIGINAL_ATTENTION
    layers._draws_masks = ORIGINAL_DRAWS if scan else (lambda m: False)
    config = hf_configs(os.environ.get("PROBE_SIZE", "base"))["bert"]
    if not dropout:
        config.hidden_dropout_prob = 0.0
    if attention is not None or not dropout:
        config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    tm = transformers.AutoModel.from_config(config).to(DEVICE)
    enc = encoders.from_config(config, rngs=nnx.Rngs(0), dtype=jnp.bfloat16)
    encoders.load_weights(enc, {k: v.detach().cpu().numpy() for k, v in tm.state_dict().items()})
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, (batch, length))
    lengths = rng.integers(length // 2, length + 1, batch)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    jitted, args = flax_passes(enc, ids, mask)["forward+backward"]
    theirs = torch_passes(tm, ids, mask, True, DEVICE)["forward+backward"]
    fns = {"flax": lambda: jax.block_until_ready(jitted(*args)), "torch": theirs}
    for _ in range(3):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(steps):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    f, t = (batch / min(times[k]) for k in ("flax", "torch"))
    fm, tmed = (batch / statistics.median(times[k]) for k in ("flax", "torch"))
    print(f"{tag:<40} b{batch:<4} flax {f:7.0f} torch {t:7.0f} best {f / t:5.2f} | median flax {fm:7.0f} "
          f"torch {tmed:7.0f} ratio {fm / tmed:5.2f}", flush=True)


if __name__ == "__main__":
    print(jax.devices()[0].device_kind, jax.__version__, torch.__version__, flush=True)
    run("shipped")
    run("no scan (layers one by one)", scan=False)
    run("no dropout anywhere", dropout=False)
    run("no attention dropout", attention=ORIGINAL_ATTENTION)
    run("no attn dropout, jax.nn xla attention", attention=xla_attention)
    run("no attn dropout, cudnn attention", attention=cudnn_attention)
    run("shipped", batch=64)
    run("shipped", batch=128)
