"""Data parallelism: a train step on 4 (simulated CPU) devices gives the parameters of the 1-device step."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
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
    rng = np.random.default_rng(0)
    batch = {"mfcc": rng.normal(size=(8, 10, 40)).astype(np.float32), "mfcc_length": rng.integers(1, 11, 8),
             "input_ids": rng.integers(0, 30, (8, 6)).astype(np.int32), "attention_mask": np.ones((8, 6), np.int32),
             "label": rng.integers(0, 4, 8).astype(np.int32), "weight": np.ones(8, np.float32),
             "index": np.arange(8, dtype=np.int32)}
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = sharding.data_mesh(devices)
        model = build_model(config, {"num_classes": 4, "vocab_size": 30})
        split = SplitModel.of(model)
        optimizer = make_optimizer(config.train, 10, parameter_groups(split.params, model.encoder_modules))
        params, other = sharding.replicate((stack([split.params]), stack([split.other])), mesh)  # one seed
        opt_state = jax.jit(jax.vmap(optimizer.init))(params)
        step = make_train_step(split, optimizer, cross_entropy)
        seeded = {k: v[None] for k, v in batch.items()}
        for k in range(3):
            params, other, opt_state, m = step(params, other, opt_state, sharding.global_batch(seeded, mesh, axis=1),
                                               jax.random.key(k)[None])
        assert len(sharding.global_batch(seeded, mesh, axis=1)["mfcc"].sharding.device_set) == len(devices)
        results.append(jax.tree.leaves(jax.device_get(params)))
    diffs = [float(np.abs(a - b).max()) for a, b in zip(*results)]
    print("max diff", max(diffs))
    assert max(diffs) < 1e-5, max(diffs)
""")


def test_four_devices_give_the_same_parameters_as_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max diff" in result.stdout
