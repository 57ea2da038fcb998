"""Throughput of the Flax speech encoders against transformers' PyTorch models of the same config
(and emotion2vec against FunASR's).

One process builds transformers' own model (`Wav2Vec2Model`, `HubertModel`, `WavLMModel` or
`Data2VecAudioModel`; for emotion2vec FunASR's `Emotion2vec` of emotion2vec_base's layout, frames from
`extract_features` with its padding mask) from a random config, copies its weights into mer_jax's Flax port through the
checkpoint loader (so both compute the same function), checks that they agree, and times both on
the same padded batch: by default 8 utterances of random lengths between 2 and 4 s of 16 kHz audio,
padded to 4 s, with an attention mask (frames from the conv strides, as transformers computes them).

Sizes: `--size base` is wav2vec2-base's shape (hidden 768, 12 layers, 12 heads, intermediate 3072,
seven conv layers of 512 channels, kernels (10,3,3,3,3,2,2), strides (5,2,2,2,2,2,2), group-normed
first conv layer, positional conv kernel 128 in 16 groups; data2vec-audio keeps its own five
positional conv layers of kernel 19). `--size small` (hidden 256, 4 layers, 4 heads, intermediate
1024, conv channels 128, same kernels and strides) is for smoke runs only.

What is timed, per batch:
- forward: eval mode (no dropout). Flax: `jax.jit` of the encoder's last hidden state,
  `block_until_ready`. PyTorch: `model.eval()` under `torch.inference_mode()` (`no_grad` without
  version counting; the faster of the two).
- forward+backward: train mode (dropout 0.1 as in the config; LayerDrop 0 and SpecAugment off in
  both, since the Flax encoder has no SpecAugment and computes a LayerDropped layer anyway), loss =
  cross-entropy of a fixed linear head (hidden -> 4 classes) over the mean of the last hidden state
  on real frames, gradients w.r.t. every encoder parameter. Flax: one `jax.jit` of
  `nnx.value_and_grad`, a fresh dropout key per call, `block_until_ready` on loss and gradients.
  PyTorch: `zero_grad(set_to_none=True)`, forward, `loss.backward()`.
No optimiser update in either. Inputs are on the device before timing. The first call of each
function is timed on its own (JAX: tracing + compilation + one run) and reported apart; then
`--warmup` untimed calls, then `--steps` timed calls, the two frameworks alternating call by call;
each number is the best of the timed calls (as `encoder_throughput.py`).

Before timing, the Flax and PyTorch eval forwards are compared in float32 at full precision (JAX
`default_matmul_precision("highest")`, PyTorch TF32 off) on the real frames: the script stops
unless they agree within 1e-3. With `--bf16` both compute in bfloat16 (Flax `dtype=bfloat16`,
float32 parameters; PyTorch `torch.autocast(bfloat16)`); their bf16 difference is printed, not
asserted. In float32 on a GPU both may use TF32 matmuls (JAX's default precision; PyTorch's
`set_float32_matmul_precision("high")` is set to match).

Device: PyTorch runs on CUDA when available, JAX on its default backend (both printed); there is no
--device flag, as in `encoder_throughput.py`.

    python benchmarks/speech_encoder_throughput.py                            # wav2vec2-base size, float32
    python benchmarks/speech_encoder_throughput.py --bf16                     # bfloat16 compute in both (GPU goal)
    python benchmarks/speech_encoder_throughput.py --model wavlm              # hubert, wavlm, data2vec-audio
    python benchmarks/speech_encoder_throughput.py --model emotion2vec        # against FunASR's (pip install --no-deps funasr)
    python benchmarks/speech_encoder_throughput.py --size small --steps 1 --warmup 1   # smoke run

Goals (issue 10): PyTorch / JAX >= 1.0 on a CPU, >= 1.3 in bf16 on a GPU. Imports neither
TensorFlow nor anything from the hub.
"""

from __future__ import annotations

import argparse
import itertools
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
from flax import nnx  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from encoder_throughput import add_host_memory_option, best_step_seconds, host_memory  # noqa: E402

from mer_jax import encoders  # noqa: E402

SAMPLING_RATE = 16000
CLASSES = 4
PARITY_TOLERANCE = 1e-3
FAMILIES = {"wav2vec2": "Wav2Vec2Config", "hubert": "HubertConfig", "wavlm": "WavLMConfig",
            "data2vec-audio": "Data2VecAudioConfig", "emotion2vec": None}
CONVS = dict(conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 conv_dim=(512,) * 7, **CONVS),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                  conv_dim=(128,) * 7, **CONVS),
    # a smoke run's shape (the tests run every benchmark at it), not a measurement
    "toy": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(16,) * 7, **CONVS),
}
# No LayerDrop (transformers skips a dropped layer, the Flax port computes and discards it) and no
# SpecAugment (not part of the Flax encoder; with both probabilities 0 transformers has no
# masked_spec_embed either, so the parameter counts match).
COMMON = dict(layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0)


def hf_config(model: str, size: str) -> transformers.PretrainedConfig:
    """wav2vec2-base's shape (or the small one) for `model`; group-normed first conv layer, positional
    conv 128 / 16 groups (data2vec-audio: its layer-normed convs and 5 positional conv layers of kernel 19)."""
    extra = (dict(num_conv_pos_embeddings=5, conv_pos_kernel_size=19, num_conv_pos_embedding_groups=16)
             if model == "data2vec-audio" else
             dict(feat_extract_norm="group", num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16))
    return getattr(transformers, FAMILIES[model])(**SIZES[size], **extra, **COMMON)


def emotion2vec_conf(size: str) -> dict:
    """emotion2vec_base's FunASR `model_conf` (layer-normed convs, 5 positional conv layers of width 95 in
    16 groups, 4 prenet and 8 main post-norm blocks, 10 extra tokens, ALiBi scales per layer and head),
    LayerDrop 0 as above; the small and toy sizes as `SIZES` (2 + 2 and 1 + 1 blocks)."""
    channels = SIZES[size]["conv_dim"][0]
    spec = f"[({channels}, 10, 5)] + [({channels}, 3, 2)] * 4 + [({channels}, 2, 2)] * 2"
    dim, heads, depth, prenet = {"base": (768, 12, 8, 4), "small": (256, 4, 2, 2), "toy": (32, 2, 1, 1)}[size]
    audio = dict(type="AUDIO", feature_encoder_spec=spec, extractor_mode="layer_norm", conv_pos_depth=5,
                 conv_pos_width=95, conv_pos_groups=16, conv_pos_pre_ln=False, prenet_depth=prenet,
                 prenet_layerdrop=0.0, prenet_dropout=0.1, start_drop_path_rate=0.0, end_drop_path_rate=0.0,
                 decoder=None, use_alibi_encoder=True, local_grad_mult=1.0, num_extra_tokens=10,
                 init_extra_token_zero=False, learned_alibi_scale=True, learned_alibi_scale_per_layer=True,
                 learned_alibi_scale_per_head=True, model_depth=depth, num_alibi_heads=heads, alibi_scale=1.0,
                 learned_alibi=False, alibi_max_pos=None)
    return dict(embed_dim=dim, num_heads=heads, mlp_ratio=4.0, depth=depth, norm_eps=1e-5, norm_affine=True,
                layer_norm_first=False, encoder_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
                post_mlp_drop=0.1, dropout_input=0.0, layerdrop=0.0, start_drop_path_rate=0.0,
                end_drop_path_rate=0.0, end_of_block_targets=False, average_top_k_layers=depth, loss_beta=0.0,
                loss_scale=None, normalize=True, modalities=dict(audio=audio))


class FunASRLastHiddenState(torch.nn.Module):
    """FunASR's `Emotion2vec` called as transformers' models are: (waves, attention_mask) -> an object with
    `last_hidden_state` (`extract_features`' frames; its padding mask marks padded samples)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, waves, attention_mask):
        x = self.model.extract_features(waves, padding_mask=attention_mask == 0)["x"]
        return transformers.modeling_outputs.BaseModelOutput(last_hidden_state=x)


def reference_model(model: str, size: str):
    """(our encoder config, the PyTorch reference of that config): transformers' model, or FunASR's."""
    if model != "emotion2vec":
        config = hf_config(model, size)
        return config, transformers.AutoModel.from_config(config)
    from funasr.models.emotion2vec.model import Emotion2vec  # noqa: PLC0415

    conf = emotion2vec_conf(size)
    return encoders.Emotion2vecConfig.from_model_conf(conf), FunASRLastHiddenState(Emotion2vec(model_conf=conf))


def padded_batch(rng, batch: int, seconds: float, config) -> dict[str, np.ndarray]:
    """Unit-variance noise of random lengths in [seconds / 2, seconds] (the first one full length),
    zero-padded, with its sample mask, frame mask and labels."""
    length = int(seconds * SAMPLING_RATE)
    lengths = rng.integers(length // 2, length + 1, batch)
    lengths[0] = length
    mask = np.arange(length)[None] < lengths[:, None]
    waves = (rng.normal(size=mask.shape) * mask).astype(np.float32)
    frames = encoders.encoder_config(config).frame_lengths(lengths)
    num_frames = int(encoders.encoder_config(config).frame_lengths(length))
    return {"input_values": waves, "attention_mask": mask.astype(np.int32), "lengths": lengths,
            "frame_mask": np.arange(num_frames)[None] < frames[:, None],
            "labels": rng.integers(0, CLASSES, batch)}


def flax_encoder(config, torch_model, dtype) -> nnx.Module:
    encoder = encoders.from_config(config, rngs=nnx.Rngs(params=0, dropout=1), dtype=dtype)
    state = getattr(torch_model, "model", torch_model).state_dict()
    encoders.load_weights(encoder, {k: v.detach().cpu().numpy() for k, v in state.items()})
    return encoder


def flax_passes(encoder, batch, head) -> dict:
    """The two timed JAX functions (each returns its outputs, blocked)."""
    waves, mask = jnp.asarray(batch["input_values"]), jnp.asarray(batch["attention_mask"])
    frame_mask, labels, head = jnp.asarray(batch["frame_mask"]), jnp.asarray(batch["labels"]), jnp.asarray(head)

    encoder.eval()
    eval_graph, eval_state = nnx.split(encoder)
    forward = jax.jit(lambda state, waves, mask: nnx.merge(eval_graph, state)(waves, mask).last_hidden_state)

    encoder.train()
    train_graph, train_state = nnx.split(encoder)

    def loss(model, waves, mask, frame_mask, labels):
        hidden = model(waves, mask).last_hidden_state.astype(jnp.float32)
        real = frame_mask[..., None].astype(jnp.float32)
        logits = ((hidden * real).sum(1) / real.sum(1)) @ head
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    @jax.jit
    def forward_backward(state, step, waves, mask, frame_mask, labels):
        model = nnx.merge(train_graph, state)
        nnx.reseed(model, dropout=jax.random.fold_in(jax.random.key(2), step))  # fresh dropout masks per call
        return nnx.value_and_grad(loss)(model, waves, mask, frame_mask, labels)

    steps = itertools.count()
    return {"forward": lambda: forward(eval_state, waves, mask).block_until_ready(),
            "forward+backward": lambda: jax.block_until_ready(
                forward_backward(train_state, np.uint32(next(steps)), waves, mask, frame_mask, labels))}


def torch_passes(model, batch, head, bf16: bool, device: str) -> dict:
    """The two timed PyTorch functions (each returns its outputs, synchronised)."""
    waves = torch.tensor(batch["input_values"], device=device)
    mask = torch.tensor(batch["attention_mask"], device=device, dtype=torch.long)
    real = torch.tensor(batch["frame_mask"], device=device, dtype=torch.float32)[..., None]
    labels = torch.tensor(batch["labels"], device=device, dtype=torch.long)
    head = torch.tensor(head, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    def forward():
        model.eval()
        with torch.inference_mode(), autocast():
            hidden = model(waves, attention_mask=mask).last_hidden_state
        sync()
        return hidden

    def forward_backward():
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast():
            hidden = model(waves, attention_mask=mask).last_hidden_state
        logits = ((hidden.float() * real).sum(1) / real.sum(1)) @ head
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        sync()
        return loss

    return {"forward": forward, "forward+backward": forward_backward}


def max_diff_on_real_frames(ours, theirs, frame_mask) -> float:
    return float(np.abs(np.asarray(ours, np.float32) - theirs.detach().float().cpu().numpy())[frame_mask].max())


def check_parity(config, torch_model, batch, device: str) -> float:
    """Max |Flax - PyTorch| of the eval forward on real frames, float32 at full precision in both.
    emotion2vec: on the unpadded first utterance (FunASR's padded frames depend on the padding; ours
    do not, by design)."""
    if isinstance(config, encoders.Emotion2vecConfig):
        batch = {k: v[:1] for k, v in batch.items()}
    encoder = flax_encoder(config, torch_model, jnp.float32)
    encoder.eval()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with jax.default_matmul_precision("highest"):
            ours = jax.jit(lambda w, m: encoder(w, m).last_hidden_state)(
                jnp.asarray(batch["input_values"]), jnp.asarray(batch["attention_mask"]))
        torch_model.eval()
        with torch.inference_mode():
            theirs = torch_model(torch.tensor(batch["input_values"], device=device),
                                 attention_mask=torch.tensor(batch["attention_mask"], device=device,
                                                             dtype=torch.long)).last_hidden_state
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return max_diff_on_real_frames(ours, theirs, batch["frame_mask"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(FAMILIES), default="wav2vec2")
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="padded length; utterances are 1/2 to 1 of it")
    parser.add_argument("--steps", type=int, default=3, help="timed calls per pass and framework (best is kept)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (timed apart) call")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute (float32 params) in both")
    add_host_memory_option(parser)
    args = parser.parse_args()
    memory = host_memory(args)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = jax.default_backend() == "gpu"
    if (device == "cuda") != on_gpu:
        print(f"warning: PyTorch runs on {device} but JAX on {jax.default_backend()}: the ratios compare devices")
    if device == "cuda" and not args.bf16:
        torch.set_float32_matmul_precision("high")  # TF32, as JAX's default precision on a GPU
    torch.manual_seed(0)
    config, torch_model = reference_model(args.model, args.size)
    torch_model = torch_model.to(device)
    rng = np.random.default_rng(0)
    batch = padded_batch(rng, args.batch, args.seconds, config)
    head = (0.02 * rng.normal(size=(config.hidden_size, CLASSES))).astype(np.float32)
    frames = batch["frame_mask"].shape[1]
    if args.model != "emotion2vec":
        expected_mask = torch_model._get_feature_vector_attention_mask(
            frames, torch.tensor(batch["attention_mask"], dtype=torch.long, device=device)).cpu().numpy()
        np.testing.assert_array_equal(batch["frame_mask"], expected_mask)
    attention = getattr(getattr(torch_model, "config", None), "_attn_implementation", "FunASR's")

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} on {device} "
          f"({torch.get_num_threads()} threads, attention {attention}); "
          f"{args.model} ({args.size}: hidden {config.hidden_size}, {config.num_hidden_layers} layers); "
          f"batch {args.batch} x {args.seconds:g} s at {SAMPLING_RATE} Hz ({frames} frames, "
          f"{int(batch['frame_mask'].sum())} real); {'bfloat16' if args.bf16 else 'float32'} compute; "
          f"best of {args.steps} after {args.warmup} warm-up; {memory}")

    diff = check_parity(config, torch_model, batch, device)
    print(f"parity (float32, eval forward, real frames): max |Flax - PyTorch| = {diff:.2e} "
          f"(tolerance {PARITY_TOLERANCE:g})", flush=True)
    if not diff <= PARITY_TOLERANCE:
        raise SystemExit(f"Flax and PyTorch disagree by {diff:.2e} > {PARITY_TOLERANCE:g}: not timing")

    encoder = flax_encoder(config, torch_model, jnp.bfloat16 if args.bf16 else jnp.float32)
    flax_params = sum(x.size for x in jax.tree.leaves(nnx.state(encoder, nnx.Param)))
    torch_params = sum(p.numel() for p in torch_model.parameters())
    ours = flax_passes(encoder, batch, head)
    theirs = torch_passes(torch_model, batch, head, args.bf16, device)

    # Each row is printed as soon as it is measured, so a run stopped by a time limit keeps what it had.
    print(f"{'pass':<18}{'JAX ms':>10}{'PyTorch ms':>12}{'JAX utt/s':>11}{'PyTorch utt/s':>15}"
          f"{'PyTorch/JAX':>13}{'JAX 1st call s':>16}{'PyTorch 1st s':>15}", flush=True)
    ratios = []
    for label in ours:
        first, outputs = {}, {}
        for name, fn in (("jax", ours[label]), ("torch", theirs[label])):
            start = time.perf_counter()
            outputs[name] = fn()
            first[name] = time.perf_counter() - start
        best = best_step_seconds({"jax": ours[label], "torch": theirs[label]}, args.steps, args.warmup)
        ratios.append(best["torch"] / best["jax"])
        print(f"{label:<18}{1e3 * best['jax']:>10.1f}{1e3 * best['torch']:>12.1f}{args.batch / best['jax']:>11.1f}"
              f"{args.batch / best['torch']:>15.1f}{ratios[-1]:>13.2f}{first['jax']:>16.2f}{first['torch']:>15.2f}",
              flush=True)
        if label == "forward" and args.bf16:
            diff = max_diff_on_real_frames(outputs["jax"], outputs["torch"], batch["frame_mask"])
            print(f"bfloat16 eval forward, real frames: max |Flax - PyTorch| = {diff:.2e} (not asserted)", flush=True)
    print(f"parameters: JAX {flax_params:,}, PyTorch {torch_params:,}")
    if flax_params != torch_params:
        raise SystemExit("parameter counts differ: the two models are not the same function")
    goal = 1.3 if on_gpu and args.bf16 else 1.0 if not on_gpu else None
    if goal is None:
        print("goal (issue 10): >= 1.3x in bf16 on a GPU; this run is float32")
    else:
        worst = min(ratios)
        print(f"goal (issue 10): PyTorch/JAX >= {goal} on {'a GPU in bf16' if on_gpu else 'a CPU'}: "
              f"{'met' if worst >= goal else 'not met'} (lowest ratio {worst:.2f})"
              + ("" if args.size == "base" else "; small size: smoke run, not the goal's measurement"))


if __name__ == "__main__":
    main()
