"""Ten LPGNet seeds in one compiled program, against one seed and against PyTorch run seed after seed.

The paper's recipe (papers/lpgnet.md; configs/lpgnet_iemocap.py) trains LPGNet 10 times
(10 seeds, 150 epochs each) and reports the mean. mer_jax trains the N seeds together: one jitted
train step vmapped over a leading seed axis (mer_jax/training/steps.py). This benchmark times, in
one process, on synthetic IEMOCAP-sized data:

    (a) one seed (N = 1) through the real vmapped train step,
    (b) N seeds (default 10) through the same step, in one program,
    (c) the PyTorch reference (tests/lpgnet_reference.py) trained N times, one seed after another:
        torch.optim.Adam(lr=3e-4, weight_decay=1e-5), the same batches and shapes, the same loss
        (Eq. 17-22, weights 1.5 / 1.0 / 0.3, tau 1), dropout 0.1, train mode.

Each is compiled / warmed up by one step that is timed on its own, then whole epochs are timed (all
steps of the epoch, blocking on the results). It prints the per-epoch time of each, the wall time
projected for ``--epochs`` (epochs x per-epoch + compile/warm-up; a projection whenever fewer epochs
were timed), and the two ratios the project targets: (b)/(a) (goal <= 2x: N seeds cost little more
than one) and (c)/(b) (goal >= 5x: the vmapped program beats PyTorch run seed by seed).

Data (numpy only, seeded): 151 dialogues, 5531 utterances (IEMOCAP's 4-class count), lengths drawn
from a gamma distribution (mean ~37) with the longest at 110, 768-dim text and audio vectors with a
planted class signal, 4 classes. The training part is 120 dialogues (Sessions 1-4 less validation),
every dialogue padded to the corpus' longest, batches of 32 dialogues in each seed's own order
(`batch_order(..., seed=s, epoch=e)`), the incomplete last batch dropped: 3 steps per epoch.
Batches are built on the host before each timed epoch (their build time is printed apart).

    python benchmarks/lpgnet_seeds.py                         # N = 10, hidden 768, 2 timed epochs
    python benchmarks/lpgnet_seeds.py --timed-epochs 1 --torch-seeds 2   # shorter on a laptop CPU
    python benchmarks/lpgnet_seeds.py --hidden 128 --seeds 4  # a quick smoke run

``--torch-seeds K`` (< N) times K of the N sequential PyTorch runs and scales their time by N / K
(the runs are independent and identical in cost); the output says so. Imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from encoder_throughput import add_host_memory_option, host_memory  # noqa: E402

from mer_jax.configs import lpgnet_iemocap  # noqa: E402
from mer_jax.data.examples import Examples, Ragged, batch_order  # noqa: E402
from mer_jax.models.lpgnet import FFN_MULTIPLIER, PATHS  # noqa: E402
from mer_jax.models.registry import build_model  # noqa: E402
from mer_jax.training import sharding  # noqa: E402
from mer_jax.training.objectives import make_objective  # noqa: E402
from mer_jax.training.optimizer import make_optimizer, parameter_groups  # noqa: E402
from mer_jax.training.steps import SplitModel, make_train_step, stack  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIELDS = ("text", "audio", "utterance_mask", "label", "weight")


# ---------------------------------------------------------------------------------------------- data

def dialogue_lengths(dialogues: int, utterances: int, longest: int, rng: np.random.Generator) -> np.ndarray:
    """`dialogues` lengths summing to `utterances`, the longest exactly `longest`, the rest drawn from a
    gamma distribution (shape 4) with IEMOCAP's mean, kept in [4, longest]."""
    if not dialogues * 4 <= utterances <= dialogues * longest:
        raise ValueError(f"{utterances} utterances do not fit {dialogues} dialogues of 4..{longest} utterances")
    mean = utterances / dialogues
    lengths = np.clip(np.rint(rng.gamma(4.0, mean / 4.0, size=dialogues)), 4, longest).astype(np.int64)
    top = int(lengths.argmax())
    lengths[top] = longest
    others = np.delete(np.arange(dialogues), top)
    while (gap := utterances - lengths.sum()) != 0:  # move the total onto the target, one utterance at a time
        room = others[(lengths[others] < longest - 1) if gap > 0 else (lengths[others] > 4)]
        lengths[rng.choice(room, size=min(abs(gap), len(room)), replace=False)] += np.sign(gap)
    return lengths


def synthetic_examples(args) -> tuple[Examples, np.ndarray]:
    """The training part's dialogue examples (every field padded to the corpus' longest dialogue) and
    the lengths of all dialogues of the synthetic corpus."""
    rng = np.random.default_rng(args.data_seed)
    lengths = dialogue_lengths(args.dialogues, args.utterances, args.max_utterances, rng)
    total = int(lengths.sum())
    labels = rng.integers(0, args.classes, size=total).astype(np.int32)
    centres = {m: rng.normal(size=(args.classes, args.dim)).astype(np.float32) for m in ("text", "audio")}
    vectors = {m: (rng.normal(size=(total, args.dim)).astype(np.float32) + 0.5 * centres[m][labels])
               for m in ("text", "audio")}
    train = np.sort(rng.permutation(args.dialogues)[: args.train_dialogues])  # Sessions 1-4 less validation
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = [np.arange(starts[d], starts[d] + lengths[d]) for d in train]

    def ragged(values, row_shape=(), dtype=np.float32):
        return Ragged.from_rows([np.asarray(values[r], dtype) for r in rows], row_shape, dtype)

    fields = {m: ragged(vectors[m], (args.dim,)) for m in ("text", "audio")}
    fields["label"] = ragged(labels, dtype=np.int32)
    fields["weight"] = ragged(np.ones(total))
    fields["utterance_mask"] = ragged(np.ones(total))
    ids = ragged(np.array([f"d{d:03d}_u{u:03d}" for d, n in enumerate(lengths) for u in range(n)]), dtype=np.str_)
    return Examples(ids, fields, dict.fromkeys(fields, args.max_utterances)), lengths


def epoch_batches(examples: Examples, seeds: list[int], epoch: int, batch_size: int) -> list[dict]:
    """One epoch's steps, each {field: (N, B, U, ...)}: seed s's batches in its own order (s, epoch)."""
    orders = [batch_order(len(examples), batch_size, train=True, seed=s, epoch=epoch) for s in seeds]
    steps = []
    for step in range(len(orders[0])):
        per_seed = [examples.take(order[step]).padded() for order in orders]
        steps.append({name: np.stack([b[name] for b in per_seed]) for name in FIELDS})
    return steps


# --------------------------------------------------------------------------------------------- sizes

def forward_flops(b: int, u: int, dim: int, d: int, classes: int) -> dict[str, float]:
    """Matmul FLOPs (2 per multiply-add) of one LPGNet forward pass over a (b, u) padded batch."""
    paths = len(PATHS)
    return {
        "projections (Eq. 2)": 2 * b * u * 2 * dim * d,
        "attention (Eq. 3-5)": paths * 2 * (2 * b * u * u * d),
        "compression conv (Eq. 6)": paths * 2 * b * d * d,
        "position-wise FFN (Eq. 7)": paths * 2 * (2 * b * u * d * FFN_MULTIPLIER * d),
        "unimodal gates (Eq. 9)": paths * 2 * b * u * d * d,
        "branch fusion (Eq. 12)": 2 * 2 * b * u * 2 * d * d,
        "heads, modality gate, classifier": 2 * b * u * d * (3 * classes + 2),
    }


def gflop(x: float) -> str:
    return f"{x / 1e9:,.1f} GFLOP"


# ---------------------------------------------------------------------------------------------- JAX

def available_bytes() -> int | None:
    """The host's available memory (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(memory, label: str, fraction: float) -> None:
    """Stop before running a compiled step whose buffers (XLA's own estimate) would not fit in
    `fraction` of the host's available memory: on a CPU backend an out-of-memory kill takes the
    process, and possibly a neighbour's, with it."""
    if memory is None or jax.default_backend() != "cpu" or fraction <= 0:
        return
    need = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes \
        - memory.alias_size_in_bytes
    have = available_bytes()
    if have is not None and need > fraction * have:
        raise SystemExit(f"{label}: the compiled step needs about {need / 2**30:.1f} GiB (XLA's estimate) but only "
                         f"{have / 2**30:.1f} GiB of host memory is available ({fraction:.0%} allowed); use fewer "
                         "--seeds or a smaller --hidden (or --memory-fraction 0 to run anyway)")


def config_of(args):
    config = lpgnet_iemocap.get_config()  # the paper's recipe: Adam 3e-4 + L2 1e-5, constant, no clipping
    config.model.hidden = args.hidden
    config.train.batch_size = args.batch
    config.train.epochs = args.epochs
    return config


def jax_seeds(args, examples: Examples, seeds: list[int], sizes: dict, label: str) -> dict:
    """Build N stacked models as mer_jax.training.loop.build_trainable does, compile the vmapped step,
    run one warm-up step, then time ``timed_epochs`` whole epochs."""
    config = config_of(args)
    config.train.seeds = len(seeds)
    splits = []
    for seed in seeds:
        model = build_model(config, sizes, seed)
        model.prepare(examples)
        splits.append(SplitModel.of(model))
    split = splits[0]
    groups = parameter_groups(split.params, model.encoder_modules)
    steps_per_epoch = len(examples) // config.train.batch_size
    optimizer = make_optimizer(config.train, steps_per_epoch * config.train.epochs, groups)
    mesh = sharding.data_mesh()
    params, other = sharding.replicate((stack([s.params for s in splits]), stack([s.other for s in splits])), mesh)
    del splits
    opt_state = jax.jit(jax.vmap(optimizer.init))(params)
    train_step = make_train_step(split, optimizer, make_objective(config.objective))
    seed_keys = [jax.random.key(seed) for seed in seeds]

    def keys_of(step):
        return jnp.stack([jax.random.fold_in(key, step) for key in seed_keys])

    def feed(local):
        return sharding.global_batch(local, mesh, axis=1)

    first = epoch_batches(examples, seeds, 0, config.train.batch_size)
    start = time.perf_counter()
    compiled = train_step.lower(params, other, opt_state, feed(first[0]), keys_of(0)).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    check_memory(memory, label, args.memory_fraction)
    start = time.perf_counter()
    params, other, opt_state, measured = compiled(params, other, opt_state, feed(first[0]), keys_of(0))
    jax.block_until_ready((params, measured))
    warm_s = time.perf_counter() - start
    first_loss = np.asarray(measured["loss"])

    epochs, build_s = [], []
    for epoch in range(args.timed_epochs):
        start = time.perf_counter()
        local = first if epoch == 0 else epoch_batches(examples, seeds, epoch, config.train.batch_size)
        build_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i, batch in enumerate(local):
            step = 1 + epoch * steps_per_epoch + i  # step 0 was the warm-up
            params, other, opt_state, measured = compiled(params, other, opt_state, feed(batch), keys_of(step))
        jax.block_until_ready((params, measured))
        epochs.append(time.perf_counter() - start)
        print(f"  {label}: epoch {epoch + 1}/{args.timed_epochs}: {epochs[-1]:.2f} s "
              f"(host batch building {build_s[-1]:.2f} s, not counted)", flush=True)
    result = dict(compile_s=compile_s, warm_s=warm_s, epochs=epochs, build_s=build_s, first_loss=first_loss,
                  last_loss=np.asarray(measured["loss"]), steps=steps_per_epoch,
                  temp_bytes=getattr(memory, "temp_size_in_bytes", None),
                  argument_bytes=getattr(memory, "argument_size_in_bytes", None),
                  params=sum(x.size for x in jax.tree.leaves(params)) // len(seeds))
    del params, other, opt_state, measured, compiled
    gc.collect()
    return result


# ------------------------------------------------------------------------------------------ PyTorch

def torch_sequential(args, examples: Examples, seeds: list[int], sizes: dict) -> dict:
    """Train the PyTorch reference once per seed, one after another; per seed one warm-up step (timed
    on its own) and ``timed_epochs`` timed epochs over the same batches as JAX's seed."""
    import torch  # noqa: PLC0415

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    sys.path.insert(0, str(ROOT / "tests"))
    from lpgnet_reference import LPGNetReference, self_distillation_loss  # noqa: PLC0415

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    objective = config_of(args).objective
    weights = dict(temperature=objective.temperature, task_weight=objective.task_weight,
                   ce_weight=objective.ce_weight, kl_weight=objective.kl_weight)
    warm, per_seed_epochs, losses = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        model = LPGNetReference(sizes["num_classes"], sizes["text_dim"], sizes["audio_dim"], args.hidden,
                                dropout=config_of(args).model.dropout).to(device)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-5)

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            outputs = model(batch["text"], batch["audio"], batch["utterance_mask"])
            loss, _ = self_distillation_loss(outputs, batch["label"], batch["weight"], **weights)
            loss.backward()
            optimizer.step()
            return loss

        def to_torch(local):
            return [{name: torch.from_numpy(b[name][0]).to(device) for name in FIELDS} for b in local]

        first = to_torch(epoch_batches(examples, [seed], 0, args.batch))
        start = time.perf_counter()
        first_loss = step(first[0]).item()
        warm.append(time.perf_counter() - start)
        epochs = []
        for epoch in range(args.timed_epochs):
            local = first if epoch == 0 else to_torch(epoch_batches(examples, [seed], epoch, args.batch))
            start = time.perf_counter()
            for batch in local:
                loss = step(batch)
            sync()
            last_loss = loss.item()
            epochs.append(time.perf_counter() - start)
            print(f"  (c) PyTorch seed {seed}: epoch {epoch + 1}/{args.timed_epochs}: {epochs[-1]:.2f} s", flush=True)
        per_seed_epochs.append(epochs)
        losses.append((first_loss, last_loss))
        del model, optimizer
        gc.collect()
    return dict(warm=warm, per_seed_epochs=per_seed_epochs, losses=losses, threads=torch.get_num_threads(),
                version=torch.__version__, device=device)


# ---------------------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="N, the seeds of (b) and (c)")
    parser.add_argument("--epochs", type=int, default=150, help="epochs of the projected run (the paper's 150)")
    parser.add_argument("--timed-epochs", type=int, default=2, help="epochs actually timed per configuration")
    parser.add_argument("--torch-seeds", type=int, default=0,
                        help="time only this many of (c)'s N sequential runs and scale by N / this (0: all N)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads for (c) (0: PyTorch's default, one per core)")
    parser.add_argument("--memory-fraction", type=float, default=0.8,
                        help="on a CPU, refuse to run a compiled step whose XLA memory estimate exceeds this "
                             "fraction of the host's available memory (0: no check)")
    parser.add_argument("--skip-torch", action="store_true", help="time (a) and (b) only")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--dim", type=int, default=768, help="text and audio vector size")
    parser.add_argument("--batch", type=int, default=32, help="dialogues per batch")
    parser.add_argument("--dialogues", type=int, default=151)
    parser.add_argument("--utterances", type=int, default=5531)
    parser.add_argument("--max-utterances", type=int, default=110, help="the longest dialogue (the padded size)")
    parser.add_argument("--train-dialogues", type=int, default=120)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--data-seed", type=int, default=0)
    add_host_memory_option(parser)
    args = parser.parse_args(argv)
    memory = host_memory(args)
    n = args.seeds
    torch_seeds = min(args.torch_seeds or n, n)
    if args.timed_epochs < 1 or n < 1:
        parser.error("--timed-epochs and --seeds must be at least 1")

    examples, lengths = synthetic_examples(args)
    sizes = {"num_classes": args.classes, "text_dim": args.dim, "audio_dim": args.dim}
    b, u, d = args.batch, args.max_utterances, args.hidden
    steps = len(examples) // b
    flops = forward_flops(b, u, args.dim, d, args.classes)
    forward = sum(flops.values())
    train_lengths = examples.fields["weight"].lengths
    order = batch_order(len(examples), b, train=True, seed=0, epoch=0)
    batch_max = [int(train_lengths[r].max()) for r in order]

    print("LPGNet: N seeds in one compiled program (benchmarks/lpgnet_seeds.py)")
    print(f"device: {jax.devices()}  (jax {jax.__version__}, backend {jax.default_backend()}; {memory})")
    print(f"N = {n} seeds; hidden d = {d}; d_ff = {FFN_MULTIPLIER * d}; {len(PATHS)} attention paths; "
          f"dropout 0.1; Adam 3e-4 + L2 1e-5 (constant, no clipping); self-distillation 1.5/1.0/0.3, tau 1")
    print(f"data (synthetic, seed {args.data_seed}): {args.dialogues} dialogues, {int(lengths.sum())} utterances, "
          f"length mean {lengths.mean():.1f} / median {np.median(lengths):.0f} / max {lengths.max()}; "
          f"{args.dim}-dim text and audio vectors; {args.classes} classes")
    print(f"train part: {len(examples)} dialogues ({int(train_lengths.sum())} utterances), batch {b} dialogues, "
          f"drop remainder -> {steps} steps/epoch; every batch padded to U = {u}")
    print(f"one seed's batch: text/audio ({b}, {u}, {args.dim}) float32, mask/label/weight ({b}, {u}); "
          f"N seeds: ({n}, {b}, {u}, ...)")
    print(f"padding: real utterances fill {train_lengths[order].sum() / order.size / u:.0%} of the {b}x{u} slots "
          f"(seed 0, epoch 0); its batches' longest dialogues: {batch_max}; the training part's longest: "
          f"{train_lengths.max()}")
    print(f"matmul FLOPs of one seed's forward pass over one padded batch: {gflop(forward)}")
    for name, value in flops.items():
        print(f"  {name:34s} {gflop(value):>16s}  {value / forward:6.1%}")
    print(f"  train step ~ 3x forward = {gflop(3 * forward)} per seed; one epoch = {gflop(3 * forward * steps)} "
          f"per seed, {gflop(3 * forward * steps * n)} for N = {n}")
    print(f"timing {args.timed_epochs} epoch(s) per configuration; projecting {args.epochs} epochs"
          + (" (a PROJECTION: fewer epochs were timed)" if args.timed_epochs < args.epochs else ""), flush=True)

    print("\n(a) one seed through the vmapped train step (N = 1)", flush=True)
    one = jax_seeds(args, examples, [0], sizes, "(a) N=1")
    print(f"\n(b) {n} seeds through the same step, one program", flush=True)
    many = jax_seeds(args, examples, list(range(n)), sizes, f"(b) N={n}")
    ref = None
    if not args.skip_torch:
        print(f"\n(c) PyTorch reference, {n} runs one after another"
              + (f" (timing {torch_seeds} of them, scaled by {n}/{torch_seeds})" if torch_seeds < n else ""),
              flush=True)
        ref = torch_sequential(args, examples, list(range(torch_seeds)), sizes)

    def mean(xs):
        return float(np.mean(xs))

    epoch_a, epoch_b = mean(one["epochs"]), mean(many["epochs"])
    total_a = one["compile_s"] + one["warm_s"] + args.epochs * epoch_a
    total_b = many["compile_s"] + many["warm_s"] + args.epochs * epoch_b
    projection = "projected" if args.timed_epochs < args.epochs else "measured"
    print(f"\n=== results ({args.timed_epochs} timed epoch(s) each; {args.epochs}-epoch totals are {projection}: "
          f"compile + warm-up step + {args.epochs} x mean epoch) ===")
    print(f"parameters per seed: {one['params']:,}")
    for tag, r, seeds_n, epoch_s, total in (("(a) JAX, N=1", one, 1, epoch_a, total_a),
                                            (f"(b) JAX, N={n}", many, n, epoch_b, total_b)):
        memory = (f"; XLA temp {r['temp_bytes'] / 2**30:.2f} GiB, arguments {r['argument_bytes'] / 2**30:.2f} GiB"
                  if r["temp_bytes"] is not None else "")
        print(f"{tag:16s} compile {r['compile_s']:7.1f} s, warm-up step {r['warm_s']:6.2f} s, "
              f"epoch {epoch_s:8.2f} s (epochs: {', '.join(f'{x:.2f}' for x in r['epochs'])}; "
              f"{3 * forward * steps * seeds_n / epoch_s / 1e9:.0f} GFLOP/s), "
              f"{args.epochs} epochs: {total / 60:8.1f} min{memory}")
        print(f"{'':16s} loss (mean over seeds) {r['first_loss'].mean():.3f} at step 0 -> "
              f"{r['last_loss'].mean():.3f} after {1 + args.timed_epochs * r['steps']} steps")
    if ref is not None:
        per_seed = [mean(e) for e in ref["per_seed_epochs"]]
        epoch_c = mean(per_seed) * n  # N sequential runs: N times one run's epoch
        total_c = n * (mean(ref["warm"]) + args.epochs * mean(per_seed))
        scaled = f", scaled from {len(per_seed)} timed runs" if len(per_seed) < n else ""
        print(f"{f'(c) PyTorch x{n}':16s} warm-up step {mean(ref['warm']):6.2f} s/run, "
              f"epoch {mean(per_seed):8.2f} s/run -> {epoch_c:.2f} s for {n} runs{scaled} "
              f"({3 * forward * steps / mean(per_seed) / 1e9:.0f} GFLOP/s), "
              f"{args.epochs} epochs x {n} runs: {total_c / 60:8.1f} min "
              f"(torch {ref['version']} on {ref['device']}, {ref['threads']} CPU threads)")
        print(f"{'':16s} loss per run {', '.join(f'{a:.3f} -> {z:.3f}' for a, z in ref['losses'])}")
    print("\nratios (same process):")
    print(f"  (b)/(a) per epoch  = {epoch_b / epoch_a:6.2f}x   (goal <= 2x; {n}x would mean no gain from vmap)")
    print(f"  (b)/(a) {args.epochs} epochs = {total_b / total_a:6.2f}x   (compile included)")
    if ref is not None:
        print(f"  (c)/(b) per epoch  = {epoch_c / epoch_b:6.2f}x   (goal >= 5x)")
        print(f"  (c)/(b) {args.epochs} epochs = {total_c / total_b:6.2f}x   (compile included)")
        print(f"  (c)/(a) per epoch  = {epoch_c / epoch_a:6.2f}x   (N PyTorch runs vs one JAX seed; "
              f"one PyTorch run vs one JAX seed: {mean(per_seed) / epoch_a:.2f}x)")


if __name__ == "__main__":
    main()
