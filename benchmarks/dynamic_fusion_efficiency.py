"""The dynamic-fusion paper's Table 3 (efficiency), measured: our full model against a PyTorch model of
the same architecture built from stock parts, in one process, on the same device.

Ours: mer_jax's DynamicFusion (Flax DeBERTa-v3, BiLSTM over MFCC, 8-head cross-modal attention, MLP)
under `jax.jit`, with the real train step (layer-wise AdamW, clipping 1.0, cross-entropy). Theirs:
transformers' `DebertaV2Model`, `nn.LSTM` over packed sequences, `nn.MultiheadAttention`, the same
projection, residual + LayerNorm, pooling and MLP, trained with `torch.optim.AdamW` (2e-5 encoder,
1e-4 rest) and `clip_grad_norm_(1.0)`. Random weights (the encoder's copied from PyTorch into Flax),
DeBERTa-v3-base sizes by default, 40 MFCC x 300 frames, 128 tokens, 6 classes.

It prints, for both: inference ms/sample at each ``--batches`` size (eval mode), one train step (s)
at ``--train-batch``, the first train step (JAX: tracing + compilation + the step; and JAX's
tracing + compilation alone, issue 13's compile goal), peak memory (on a GPU: the
device's peak; on a CPU: XLA's estimate of the compiled train step for JAX, PyTorch's not measured),
the parameter count, and the ratios PyTorch / JAX (> 1: JAX faster). Every time is the best of
``--steps`` calls after ``--warmup``, the frameworks alternating call by call.

    python benchmarks/dynamic_fusion_efficiency.py                         # DeBERTa-v3-base sizes
    python benchmarks/dynamic_fusion_efficiency.py --size small --steps 3  # a quick look on a laptop
    python benchmarks/dynamic_fusion_efficiency.py --bf16                  # bfloat16 compute in both

The paper's 27.6 M parameters cannot include DeBERTa-v3-base (about 184 M with its 128k-token
embedding table, 86 M without it); the count printed here is the whole model's.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from encoder_throughput import SIZES, add_host_memory_option, hf_configs, host_memory  # noqa: E402
from timing import best_step_seconds, seconds  # noqa: E402

from mer_jax import encoders  # noqa: E402
from mer_jax.config import base_config  # noqa: E402
from mer_jax.models.dynamic_fusion import DynamicFusion  # noqa: E402
from mer_jax.models.registry import model_rngs  # noqa: E402
from mer_jax.training.objectives import cross_entropy  # noqa: E402
from mer_jax.training.optimizer import make_optimizer, parameter_groups  # noqa: E402
from mer_jax.training.steps import SplitModel, make_eval_step, make_train_step, stack  # noqa: E402

D_MODEL, HEADS, DROPOUT, N_MFCC, CLASSES = 256, 8, 0.3, 40, 6


class TorchDynamicFusion(nn.Module):
    """The same architecture from stock PyTorch parts."""

    def __init__(self, encoder: nn.Module, hidden: int):
        super().__init__()
        self.encoder = encoder
        self.lstm = nn.LSTM(N_MFCC, D_MODEL // 2, batch_first=True, bidirectional=True)
        self.text_projection = nn.Linear(hidden, D_MODEL)
        self.attention = nn.MultiheadAttention(D_MODEL, HEADS, dropout=DROPOUT, batch_first=True)
        self.norm = nn.LayerNorm(D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)
        self.hidden = nn.Linear(D_MODEL, D_MODEL)
        self.classifier = nn.Linear(D_MODEL, CLASSES)

    def forward(self, mfcc, lengths, ids, mask):
        packed = nn.utils.rnn.pack_padded_sequence(mfcc, lengths.cpu(), batch_first=True, enforce_sorted=False)
        audio, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                    total_length=mfcc.shape[1])
        text = self.text_projection(self.encoder(ids, mask).last_hidden_state)
        attended, _ = self.attention(audio, text, text, key_padding_mask=~mask.bool())
        fused = self.norm(audio + self.dropout(attended))
        frames = (torch.arange(mfcc.shape[1], device=mfcc.device)[None] < lengths[:, None]).unsqueeze(-1).float()
        pooled = (fused * frames).sum(1) / frames.sum(1)
        return self.classifier(self.dropout(torch.relu(self.hidden(self.dropout(pooled)))))


def batch_of(rng, size: int, frames: int, tokens: int, vocab: int) -> dict:
    lengths = rng.integers(frames // 2, frames + 1, size)
    token_lengths = rng.integers(tokens // 2, tokens + 1, size)
    return {"mfcc": rng.normal(size=(size, frames, N_MFCC)).astype(np.float32) * (np.arange(frames) < lengths[:, None])[..., None],
            "mfcc_length": lengths.astype(np.int32),
            "input_ids": rng.integers(1, vocab, (size, tokens)).astype(np.int32),
            "attention_mask": (np.arange(tokens)[None] < token_lengths[:, None]).astype(np.int32),
            "label": rng.integers(0, CLASSES, size).astype(np.int32), "weight": np.ones(size, np.float32)}


def jax_side(hf_config, torch_encoder, args, compute_dtype):
    encoder = encoders.from_config(hf_config, rngs=model_rngs(0), dtype=compute_dtype)
    encoders.load_weights(encoder, {k: v.detach().cpu().numpy() for k, v in torch_encoder.state_dict().items()})
    model = DynamicFusion(num_classes=CLASSES, n_mfcc=N_MFCC, d_model=D_MODEL, num_heads=HEADS, dropout=DROPOUT,
                          text_encoder=encoder, text_hidden=hf_config.hidden_size, rngs=model_rngs(0))
    split = SplitModel.of(model, jnp.dtype(compute_dtype).name)  # model.dtype: the whole model in bf16 with --bf16
    train = base_config().train  # every field the optimiser reads, with the paper's settings below
    train.update(optimizer="adamw", lr=1e-4, encoder_lr=2e-5, weight_decay=0.01, schedule="constant",
                 warmup_fraction=0.0, clip_norm=1.0, freeze_encoder=False, accumulate_steps=1, ema_decay=0.0)
    optimizer = make_optimizer(train, 1000, parameter_groups(split.params, model.encoder_modules))
    params, other = stack([split.params]), stack([split.other])
    opt_state = jax.jit(jax.vmap(optimizer.init))(params)
    train_step = make_train_step(split, optimizer, cross_entropy)
    eval_step = make_eval_step(split)
    return split, train_step, eval_step, params, other, opt_state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute in both (float32 parameters)")
    add_host_memory_option(parser)
    args = parser.parse_args()
    memory = host_memory(args)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = jax.default_backend() == "gpu"
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} on {device}; "
          f"text encoder deberta-v3 ({args.size}); {args.frames} frames x {args.tokens} tokens; "
          f"{'bfloat16' if args.bf16 else 'float32'} compute; {memory}")
    hf_config = hf_configs(args.size)["deberta-v3"]
    torch.manual_seed(0)
    torch_encoder = transformers.AutoModel.from_config(hf_config)
    theirs = TorchDynamicFusion(torch_encoder, hf_config.hidden_size).to(device)
    split, train_step, eval_step, params, other, opt_state = jax_side(
        hf_config, torch_encoder, args, jnp.bfloat16 if args.bf16 else jnp.float32)
    encoder_ids = {id(p) for p in theirs.encoder.parameters()}
    torch_optimizer = torch.optim.AdamW([
        {"params": [p for p in theirs.parameters() if id(p) in encoder_ids], "lr": 2e-5},
        {"params": [p for p in theirs.parameters() if id(p) not in encoder_ids], "lr": 1e-4}], weight_decay=0.01)
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16)  # noqa: E731
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)

    def torch_inputs(batch):
        return [torch.tensor(batch[k], device=device) for k in ("mfcc", "mfcc_length", "input_ids", "attention_mask")]

    rows = []
    for size in args.batches:
        batch = batch_of(rng, size, args.frames, args.tokens, hf_config.vocab_size)
        device_batch, inputs = jax.device_put(batch), torch_inputs(batch)

        def torch_forward():
            theirs.eval()
            with torch.inference_mode(), autocast():
                theirs(*inputs)
            sync()

        def jax_forward():
            eval_step(split.params, split.other, device_batch).block_until_ready()

        best = best_step_seconds({"jax": jax_forward, "torch": torch_forward}, args.steps, args.warmup)
        rows.append((f"inference, batch {size} (ms/sample)", 1e3 * best["jax"] / size, 1e3 * best["torch"] / size))

    batch = batch_of(rng, args.train_batch, args.frames, args.tokens, hf_config.vocab_size)
    inputs, labels = torch_inputs(batch), torch.tensor(batch["label"], device=device, dtype=torch.long)
    stacked = jax.device_put({k: v[None] for k, v in batch.items()})
    keys = jnp.stack([jax.random.key(0)])
    state = {"params": params, "other": other, "opt_state": opt_state}

    def jax_train():
        state["params"], state["other"], state["opt_state"], measured = train_step(
            state["params"], state["other"], state["opt_state"], stacked, keys)
        jax.block_until_ready(measured)

    def torch_train():
        theirs.train()
        torch_optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(theirs(*inputs).float(), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        torch_optimizer.step()
        sync()

    start = time.perf_counter()  # compiled apart (issue 13's goal); the first call then reuses it
    compiled = train_step.lower(state["params"], state["other"], state["opt_state"], stacked, keys).compile()
    compile_jax = time.perf_counter() - start
    memory = compiled.memory_analysis()
    first_jax, first_torch = seconds(jax_train), seconds(torch_train)
    best = best_step_seconds({"jax": jax_train, "torch": torch_train}, args.steps, args.warmup)
    rows.append((f"train step, batch {args.train_batch} (s)", best["jax"], best["torch"]))
    rows.append(("first train step (s; JAX: trace + compile + run)", compile_jax + first_jax, first_torch))
    rows.append(("of which JAX's trace + compile (s)", compile_jax, float("nan")))

    print(f"{'':<46}{'JAX':>12}{'PyTorch':>12}{'PyTorch/JAX':>13}")
    for label, ours, torch_time in rows:
        print(f"{label:<46}{ours:>12.2f}{torch_time:>12.2f}{torch_time / ours:>13.2f}")
    if gpu:
        peak = jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0) / 2**30
        print(f"{'peak device memory (GiB)':<46}{peak:>12.2f}{torch.cuda.max_memory_allocated() / 2**30:>12.2f}")
    elif memory is not None:
        need = (memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
                - memory.alias_size_in_bytes) / 2**30
        print(f"{'train step memory (GiB; XLA estimate)':<46}{need:>12.2f}{'n/a':>12}")
    jax_params = sum(x.size for x in jax.tree.leaves(split.params))
    torch_params = sum(p.numel() for p in theirs.parameters())
    print(f"{'parameters (M)':<46}{jax_params / 1e6:>12.1f}{torch_params / 1e6:>12.1f}")
    print("(JAX's cross-modal attention has no key bias: softmax cancels it; the paper reports 27.6 M, which "
          "cannot include DeBERTa-v3-base)")


if __name__ == "__main__":
    main()
