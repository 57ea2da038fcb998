"""train.ema_decay: an exponential moving average of the parameters, kept in the optimiser state and
used by validation, the best checkpoint and test."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mer_jax.config import base_config, validate
from mer_jax.errors import ConfigError
from mer_jax.training.optimizer import evaluated_params, parameter_average


def test_the_average_follows_the_parameters_with_the_warmed_up_decay():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    optimizer = optax.chain(optax.sgd(0.5), parameter_average(0.8))
    state = optimizer.init(params)
    expected = {k: v.copy() for k, v in params.items()}
    for t in range(6):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        d = min(0.8, (1 + t) / (10 + t))  # 0.1, 0.18, 0.25, ..., then 0.8
        expected = {k: d * expected[k] + (1 - d) * np.asarray(params[k]) for k in params}
    averaged = optax.tree_utils.tree_get(state, "averaged_params")
    for k in params:
        np.testing.assert_allclose(averaged[k], expected[k], rtol=1e-6)
        assert not np.allclose(averaged[k], params[k])


def test_evaluation_reads_the_average_through_accumulation_and_seeds():
    from mer_jax.training.optimizer import make_optimizer

    config = base_config().train
    config.ema_decay, config.accumulate_steps, config.clip_norm = 0.5, 2, 0.0
    params = {"w": jnp.ones((2, 3))}
    optimizer = make_optimizer(config, 4, {"w": "rest"})
    seeds = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), params)
    state = jax.vmap(optimizer.init)(seeds)
    grads = {"w": jnp.ones((2, 2, 3))}
    averaged = seeds["w"]
    for k in range(4):
        updates, state = jax.vmap(optimizer.update)(grads, state, seeds)
        seeds = optax.apply_updates(seeds, updates)
        before, averaged = averaged, evaluated_params(config, seeds, state)["w"]
        # the first of two accumulated batches moves nothing, the average neither; the second moves both
        assert np.array_equal(averaged, before) == (k % 2 == 0)
    assert averaged.shape == (2, 2, 3)
    assert not np.allclose(averaged, seeds["w"]) and np.all(averaged < jnp.array([1.0, 2.0])[:, None, None])
    config.ema_decay = 0.0
    assert evaluated_params(config, seeds, state) is seeds


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_a_bad_decay_is_refused(decay):
    config = base_config()
    config.train.ema_decay = decay
    with pytest.raises(ConfigError, match="train.ema_decay"):
        validate(config)


def test_the_best_checkpoint_holds_the_average_not_the_trained_parameters(demo_root, demo_cache, tmp_path):
    """One epoch, two seeds: the best epoch is that epoch, and its checkpoint holds each seed's average."""
    from mer_jax.training.checkpoints import RunCheckpoints
    from mer_jax.training.experiment import load_experiment_data
    from mer_jax.training.loop import build_trainable, prepare_fold_data, run_epochs

    config = base_config()
    config.data.update(root=str(demo_root), cache_dir=str(demo_cache))
    config.split.protocol = "holdout"
    config.model.d_model, config.model.num_heads, config.text.hidden, config.text.heads = 16, 2, 16, 2
    config.features.max_frames, config.train.batch_size, config.train.seeds = 60, 8, 2
    config.train.epochs, config.train.ema_decay = 1, 0.9
    data = load_experiment_data(config)
    fold = prepare_fold_data(config, data, data.splits[0], tmp_path / "run", write=False)
    trainable = build_trainable(config, fold)
    checkpoints = RunCheckpoints(tmp_path / "run")
    state = run_epochs(config, fold, trainable, checkpoints, tmp_path / "run")
    best = checkpoints.restore_best({"params": state["params"], "other": state["other"]})["params"]
    checkpoints.close()
    averaged = evaluated_params(config.train, state["params"], state["opt_state"])
    for saved, average in zip(jax.tree.leaves(best), jax.tree.leaves(averaged)):
        np.testing.assert_array_equal(saved, average)
    assert not all(np.allclose(a, t) for a, t in zip(jax.tree.leaves(averaged), jax.tree.leaves(state["params"])))
