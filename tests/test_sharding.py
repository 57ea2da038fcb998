"""Data parallelism: a train step on 4 (simulated CPU) devices gives the gradients and parameters of the
1-device step; the step compiles once per batch shape."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from mer_jax.config import base_config
from mer_jax.data.examples import numpy_batches
from mer_jax.training import sharding
from mer_jax.training.experiment import load_experiment_data
from mer_jax.training.loop import build_trainable, prepare_fold_data

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])  # tests/, for float32.py
    import jax, numpy as np, optax
    from float32 import assert_float32_close
    from mer_jax.config import base_config
    from mer_jax.models.registry import build_model
    from mer_jax.training import sharding
    from mer_jax.training.objectives import cross_entropy
    from mer_jax.training.optimizer import make_optimizer, parameter_groups
    from mer_jax.training.steps import SplitModel, make_train_step, stack

    assert jax.device_count() == 4, jax.devices()
    config = base_config()
    config.model.d_model, config.model.num_heads, config.text.hidden = 16, 2, 16
    config.text.heads, config.features.max_tokens, config.train.encoder_lr = 2, 6, 1e-3
    # Adam's update lr * m / sqrt(v) does not see a gradient's scale, and clipping to norm 1 would hide it
    # too: without clipping, the measured gradient norms and Adam's moments (mu = sum of (1 - b1) b1^k g_k)
    # show a gradient summed over the devices instead of averaged.
    config.train.clip_norm = 0.0
    rng = np.random.default_rng(0)
    batch = {"mfcc": rng.normal(size=(8, 10, 40)).astype(np.float32), "mfcc_length": rng.integers(1, 11, 8),
             "input_ids": rng.integers(0, 30, (8, 6)).astype(np.int32), "attention_mask": np.ones((8, 6), np.int32),
             "label": rng.integers(0, 4, 8).astype(np.int32), "weight": np.ones(8, np.float32),
             "index": np.arange(8, dtype=np.int32)}
    results, measured, moments = [], [], []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = sharding.data_mesh(devices)
        model = build_model(config, {"num_classes": 4, "vocab_size": 30})
        split = SplitModel.of(model)
        optimizer = make_optimizer(config.train, 10, parameter_groups(split.params, model.encoder_modules))
        params, other = sharding.replicate((stack([split.params]), stack([split.other])), mesh)  # one seed
        opt_state = jax.jit(jax.vmap(optimizer.init))(params)
        step = make_train_step(split, optimizer, cross_entropy)
        seeded = {k: v[None] for k, v in batch.items()}
        steps = []
        for k in range(3):
            params, other, opt_state, m = step(params, other, opt_state, sharding.global_batch(seeded, mesh, axis=1),
                                               jax.random.key(k)[None])
            steps.append([float(m["loss"][0]), float(m["grad_norm"][0])])
        assert len(sharding.global_batch(seeded, mesh, axis=1)["mfcc"].sharding.device_set) == len(devices)
        results.append(jax.tree.leaves(jax.device_get(params)))
        measured.append(np.array(steps))
        moments.append([jax.device_get(leaf) for name in ("mu", "nu")
                        for _, tree in optax.tree_utils.tree_get_all_with_path(opt_state, name)
                        for leaf in jax.tree.leaves(tree)])
    print("loss and gradient norm per step", measured)
    assert measured[0][:, 1].min() > 0.1  # a gradient to compare
    np.testing.assert_allclose(measured[1], measured[0], rtol=1e-5)
    assert len(moments[0]) == len(moments[1]) > 0
    for a, b in zip(*moments):  # mu ~ g, nu ~ g^2 of every parameter (a summed gradient: 4 and 16 times)
        assert_float32_close(b, a)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(*results)]
    print("max diff", max(diffs))
    assert max(diffs) < 1e-5, max(diffs)
""")


def test_four_devices_give_the_same_parameters_as_one():
    env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT, os.path.dirname(__file__)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max diff" in result.stdout


def test_the_train_step_compiles_once_per_batch_shape(demo_root, demo_cache, tmp_path):
    """The habit "no recompiles after the first step": the state a step returns is placed like the state
    it took, so its second call reuses the first call's program (it once compiled twice, 10 s on MELD)."""
    config = base_config()
    config.data.update(root=str(demo_root), cache_dir=str(demo_cache))
    config.split.protocol = "holdout"
    config.model.d_model, config.model.num_heads, config.text.hidden, config.text.heads = 16, 2, 16, 2
    config.features.max_frames, config.train.batch_size, config.train.seeds = 60, 8, 2
    config.features.length_buckets = 2  # two batch shapes: two compilations, each checked
    data = load_experiment_data(config)
    fold = prepare_fold_data(config, data, data.splits[0], tmp_path / "run", write=False)
    trainable = build_trainable(config, fold)
    params, other, opt_state, diverged = (trainable.state[k] for k in ("params", "other", "opt_state", "diverged"))
    keys = jax.random.split(jax.random.key(0), config.train.seeds)
    shapes = set()
    for i, local in enumerate(numpy_batches(fold.examples["train"], config.train.batch_size, train=True)):
        if i == 6:
            break
        shapes.add(tuple(v.shape for v in local.values()))
        seeded = {k: np.broadcast_to(v, (config.train.seeds, *v.shape)) for k, v in local.items()}
        batch = sharding.global_batch(seeded, trainable.mesh, axis=1)
        params, other, opt_state, _, diverged = trainable.train_step(params, other, opt_state, batch, keys, i, diverged)
    assert trainable.train_step._cache_size() == len(shapes), (trainable.train_step._cache_size(), shapes)
