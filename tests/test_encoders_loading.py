"""Strict checkpoint loading: every tensor mapped or knowingly ignored, errors that name the tensor,
the checkpoint file layouts Hugging Face produces, and hub-id resolution without a network."""

import json
import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mer_jax import encoders  # noqa: E402
from mer_jax.encoders import checkpoint  # noqa: E402

BERT = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=32)
DEBERTA = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
               relative_attention=True, position_buckets=8, max_relative_positions=20, pos_att_type="p2c|c2p",
               share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0)

IDS = np.array([[2, 5, 9, 14, 3, 0, 0], [2, 7, 7, 30, 41, 12, 3]])
MASK = (IDS != 0).astype(np.int64)


def save(model, folder):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval().save_pretrained(folder)
    return model


def assert_matches(encoder, torch_base_model):
    with torch.no_grad():
        expected = torch_base_model(torch.tensor(IDS), torch.tensor(MASK)).last_hidden_state.numpy()
    got = np.asarray(encoder(jnp.asarray(IDS), jnp.asarray(MASK)).last_hidden_state)
    assert np.abs(got - expected)[MASK.astype(bool)].max() <= 1e-4


@pytest.fixture
def bert_dir(tmp_path):
    save(transformers.BertModel(transformers.BertConfig(**BERT)), tmp_path)
    return tmp_path


def rewrite(folder, change):
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


def test_missing_tensor_is_named(bert_dir):
    rewrite(bert_dir, lambda t: t.pop("encoder.layer.1.attention.self.key.bias"))
    with pytest.raises(encoders.CheckpointMismatchError, match=r"missing.*encoder\.layer\.1\.attention\.self\.key\.bias"):
        encoders.from_pretrained(bert_dir)


def test_wrong_shape_is_named(bert_dir):
    def widen(t):
        t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((25, 16), np.float32)
    rewrite(bert_dir, widen)
    with pytest.raises(encoders.CheckpointMismatchError,
                       match=r"shape.*encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \(25, 16\), "
                             r"encoder expects \(24, 16\)"):
        encoders.from_pretrained(bert_dir)


def test_unexpected_tensor_is_named(bert_dir):
    rewrite(bert_dir, lambda t: t.update({"encoder.layer.0.attention.self.gate.weight": np.zeros(2, np.float32)}))
    with pytest.raises(encoders.CheckpointMismatchError, match=r"unexpected.*attention\.self\.gate\.weight"):
        encoders.from_pretrained(bert_dir)


def test_all_problems_reported_together(bert_dir):
    def damage(t):
        t.pop("embeddings.word_embeddings.weight")
        t.pop("pooler.dense.bias")  # the pooler weight remains, so a pooler is expected
        t["embeddings.LayerNorm.weight"] = np.ones(17, np.float32)
    rewrite(bert_dir, damage)
    with pytest.raises(encoders.CheckpointMismatchError) as error:
        encoders.from_pretrained(bert_dir)
    for name in ("embeddings.word_embeddings.weight", "pooler.dense.bias", "embeddings.LayerNorm.weight"):
        assert name in str(error.value)


def test_pretraining_checkpoint_ignores_heads_and_keeps_pooler(tmp_path):
    model = save(transformers.BertForPreTraining(transformers.BertConfig(**BERT)), tmp_path)
    names = load_file(tmp_path / "model.safetensors")
    assert any(n.startswith("cls.") for n in names) and any(n.startswith("bert.") for n in names)
    encoder, _ = encoders.from_pretrained(tmp_path)
    assert encoder.pooler is not None
    assert_matches(encoder, model.bert)


def test_checkpoint_without_pooler_gives_encoder_without_pooler(tmp_path):
    model = save(transformers.BertModel(transformers.BertConfig(**BERT), add_pooling_layer=False), tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path)
    assert encoder.pooler is None
    assert_matches(encoder, model)


@pytest.mark.parametrize("head, extra", [
    ("DebertaV2ForSequenceClassification", dict(num_labels=3)),
    ("DebertaV2ForMaskedLM", dict(legacy=True)),
    ("DebertaV2ForMaskedLM", dict(legacy=False)),
    ("DebertaV2ForTokenClassification", dict(num_labels=5)),
])
def test_deberta_task_checkpoints_load_their_base_model(head, extra, tmp_path):
    model = save(getattr(transformers, head)(transformers.DebertaV2Config(**DEBERTA, **extra)), tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path)
    assert_matches(encoder, model.deberta)


def test_unused_absolute_positions_in_deberta_v3_checkpoint_are_ignored(tmp_path):
    model = save(transformers.DebertaV2Model(transformers.DebertaV2Config(**DEBERTA)), tmp_path)
    rewrite(tmp_path, lambda t: t.update({"embeddings.position_embeddings.weight": np.zeros((512, 16), np.float32)}))
    encoder, _ = encoders.from_pretrained(tmp_path)
    assert encoder.embeddings.position_embeddings is None
    assert_matches(encoder, model)


def test_pytorch_bin_with_legacy_layernorm_names(tmp_path):
    model = save(transformers.BertModel(transformers.BertConfig(**BERT)), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    legacy = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): t
              for name, t in model.state_dict().items()}
    assert any(name.endswith("LayerNorm.gamma") for name in legacy)
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    encoder, _ = encoders.from_pretrained(tmp_path)
    assert_matches(encoder, model)


def test_sharded_safetensors(tmp_path):
    model = save(transformers.BertModel(transformers.BertConfig(**BERT)), tmp_path / "full")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    encoder, _ = encoders.from_pretrained(tmp_path / "sharded")
    assert_matches(encoder, model)


def test_bfloat16_checkpoint_loads_into_float32_params(tmp_path):
    model = save(transformers.DebertaV2Model(transformers.DebertaV2Config(**DEBERTA)), tmp_path)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    encoder, _ = encoders.from_pretrained(tmp_path / "bf16")
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(encoder, nnx.Param)))
    with torch.no_grad():  # the same bf16-rounded weights, computed in float32 by both
        expected = model.float()(torch.tensor(IDS), torch.tensor(MASK)).last_hidden_state.numpy()
    got = np.asarray(encoder(jnp.asarray(IDS), jnp.asarray(MASK)).last_hidden_state)
    assert np.abs(got - expected)[MASK.astype(bool)].max() <= 1e-4


def test_bfloat16_compute_matches_pytorch_in_bfloat16(tmp_path):
    model = save(transformers.DebertaV2Model(transformers.DebertaV2Config(**DEBERTA)), tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path, dtype=jnp.bfloat16)
    with torch.no_grad():
        expected = model.to(torch.bfloat16)(torch.tensor(IDS), torch.tensor(MASK)).last_hidden_state.float().numpy()
    got = np.asarray(encoder(jnp.asarray(IDS), jnp.asarray(MASK)).last_hidden_state, np.float32)
    # The output is layer-normalised (unit scale): bf16 rounding moves it by about one bf16 step (0.008 at 1,
    # measured), a wrong weight by far more.
    real = MASK.astype(bool)
    np.testing.assert_allclose(got[real], expected[real], atol=1e-2, rtol=1e-2)


def test_dropout_overrides_reach_every_dropout(bert_dir):
    encoder, _ = encoders.from_pretrained(bert_dir, hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.0)
    rates = [m.rate for _, m in nnx.iter_graph(encoder) if isinstance(m, nnx.Dropout)]
    assert sorted(set(rates)) == [0.0, 0.3] and len(rates) == 1 + 2 * 3
    assert encoder.config.hidden_dropout_prob == 0.3


def test_unsupported_model_type(tmp_path):
    transformers.RobertaModel(transformers.RobertaConfig(**BERT)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'roberta' is not supported"):
        encoders.from_pretrained(tmp_path)


def test_hub_ids_go_through_snapshot_download(bert_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, cache_dir=None):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        return str(bert_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    encoder, hf_config = encoders.from_pretrained("someone/tiny-bert", revision="main")
    assert hf_config.model_type == "bert" and encoder.hidden_size == 16
    assert calls == [("someone/tiny-bert", "main", tuple(checkpoint.HUB_PATTERNS))]

    calls.clear()
    with pytest.raises(FileNotFoundError, match="is not a folder .and does not look like a hub id"):
        encoders.from_pretrained(str(bert_dir / "no-such-folder"))
    assert calls == []


def test_config_dict_round_trip(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    encoder = encoders.from_config(config, rngs=nnx.Rngs(0))
    assert encoder.config == encoders.encoder_config(transformers.AutoConfig.from_pretrained(bert_dir))
