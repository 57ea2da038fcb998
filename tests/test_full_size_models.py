"""The dynamic-fusion paper's model at its full size, and every row of its Tables 1 and 2 as the table
configs build them, with the pretrained encoders they name (DeBERTa-v3-base, bert-base-uncased,
wav2vec2-base): parameter shapes and counts against counts computed here by hand from the published
sizes (the paper's Section 3: 40 MFCC -> BiLSTM 2 x 128, 768 -> 256, 8 heads, a two-layer MLP; the
encoders' own configs).

Nothing can be downloaded here, so each encoder is built from its configuration as the hub publishes it
(written to a folder with transformers), abstractly (`nnx.eval_shape`: shapes, no memory), in place of
`from_pretrained`, which would read the same configuration and then load the weights into it.
"""

import runpy

import jax
import numpy as np
import pytest
from flax import nnx

transformers = pytest.importorskip("transformers")

from mer_jax import encoders  # noqa: E402
from mer_jax.configs import resolve  # noqa: E402
from mer_jax.configs.tables import dynamic_fusion_table1, dynamic_fusion_table2  # noqa: E402
from mer_jax.models.registry import build_model  # noqa: E402
from mer_jax.training.optimizer import parameter_groups  # noqa: E402

# The hub's config.json of each encoder the tables name (the fields that decide the parameters).
HUB_CONFIGS = {
    "microsoft/deberta-v3-base": transformers.DebertaV2Config(
        vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, type_vocab_size=0, relative_attention=True, position_buckets=256,
        max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
        position_biased_input=False, layer_norm_eps=1e-7, hidden_act="gelu"),
    "bert-base-uncased": transformers.BertConfig(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu"),
    "facebook/wav2vec2-base": transformers.Wav2Vec2Config(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False,
        feat_extract_norm="group", num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        do_stable_layer_norm=False),
}


# --- parameter counts by hand ---

def dense(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def layer_norm(d):
    return 2 * d


def transformer_layer(d=768, ff=3072):
    """Q, K, V, output projection and LayerNorm; feed-forward in and out and LayerNorm."""
    return 4 * dense(d, d) + layer_norm(d) + dense(d, ff) + dense(ff, d) + layer_norm(d)


# word, position and token-type embeddings, LayerNorm, 12 layers, pooler (bert-base-uncased has one)
BERT_BASE = 30522 * 768 + 512 * 768 + 2 * 768 + layer_norm(768) + 12 * transformer_layer() + dense(768, 768)
# word embeddings, LayerNorm, 12 layers, relative position embeddings (2 x 256 buckets) and their LayerNorm
DEBERTA_V3_BASE = 128100 * 768 + layer_norm(768) + 12 * transformer_layer() + 2 * 256 * 768 + layer_norm(768)
# conv feature encoder (first conv's GroupNorm), feature projection (LayerNorm, dense), weight-normed
# positional convolution (v, g, bias; 16 groups, kernel 128), encoder LayerNorm, 12 layers
WAV2VEC2_BASE = (512 * 1 * 10 + 2 * 512 + 4 * 512 * 512 * 3 + 2 * 512 * 512 * 2 + layer_norm(512) + dense(512, 768)
                 + 768 * (768 // 16) * 128 + 128 + 768 + layer_norm(768) + 12 * transformer_layer())
# the paper's sizes: 40 MFCC -> BiLSTM 2 x 128 (per direction four gates over input and recurrent state, one
# bias), 768 -> 256, 8-head attention over d = 256 (Q, V, output with bias; K without, a bias that
# cancels in the softmax), LayerNorm, two-layer MLP 256 -> 256 -> 6 classes
BILSTM = 2 * (4 * 128 * 40 + 4 * 128 * 128 + 4 * 128)
TEXT_PROJECTION = dense(768, 256)
ATTENTION = 3 * dense(256, 256) + dense(256, 256, bias=False) + layer_norm(256)
MLP = dense(256, 256) + dense(256, 6)
MEAN_POOLING = dense(40, 256)  # the baseline's frames projected to d, then averaged
CONCAT_MLP = dense(512, 256) + dense(256, 6)  # concatenated audio and text vectors
SPEECH = WAV2VEC2_BASE + 13 + dense(768, 256)  # + SUPERB weights of the 13 hidden states, projection to d

# row -> (text encoder, frozen, parameters outside the encoders, total)
EXPECTED = {
    "full": ("microsoft/deberta-v3-base", False, BILSTM + TEXT_PROJECTION + ATTENTION + MLP),
    "text": ("microsoft/deberta-v3-base", False, TEXT_PROJECTION + MLP),
    "audio": (None, False, BILSTM + MLP),
    "wav2vec2": (None, False, SPEECH - WAV2VEC2_BASE + MLP),
    "baseline": ("bert-base-uncased", True, MEAN_POOLING + TEXT_PROJECTION + CONCAT_MLP),
    "bilstm": ("bert-base-uncased", True, BILSTM + TEXT_PROJECTION + CONCAT_MLP),
    "deberta": ("microsoft/deberta-v3-base", False, BILSTM + TEXT_PROJECTION + CONCAT_MLP),
}
ENCODER_SIZES = {"microsoft/deberta-v3-base": DEBERTA_V3_BASE, "bert-base-uncased": BERT_BASE,
                 "facebook/wav2vec2-base": WAV2VEC2_BASE}


def test_hand_counts_are_the_published_sizes():
    """The hand counts against the sizes the model cards give (184 M, 110 M, 94.4 M in the paper's Table 1)
    and against transformers' PyTorch models of the same configs, built without memory."""
    torch = pytest.importorskip("torch")
    assert (DEBERTA_V3_BASE, BERT_BASE, WAV2VEC2_BASE) == (183_831_552, 109_482_240, 94_370_944)
    models = {"microsoft/deberta-v3-base": transformers.DebertaV2Model, "bert-base-uncased": transformers.BertModel,
              "facebook/wav2vec2-base": transformers.Wav2Vec2Model}
    for name, cls in models.items():
        with torch.device("meta"):
            model = cls(HUB_CONFIGS[name])
        # transformers' wav2vec2 also holds the 768-wide mask embedding of its pre-training SpecAugment
        extra = 768 if name == "facebook/wav2vec2-base" else 0
        assert sum(p.numel() for p in model.parameters()) == ENCODER_SIZES[name] + extra, name


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    """A folder per hub name with its config.json (and wav2vec2-base's preprocessor_config.json)."""
    folders = {}
    for name, config in HUB_CONFIGS.items():
        folder = tmp_path_factory.mktemp(name.replace("/", "_"))
        config.save_pretrained(folder)
        folders[name] = folder
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(
        folders["facebook/wav2vec2-base"])
    return folders


_BUILT = {}  # abstract encoders by (name, dtype, dropout), shared by the tests of this file


@pytest.fixture
def abstract_checkpoints(hub_folders, monkeypatch):
    """`from_pretrained` for the hub names the tables use: the encoder their configuration describes, built
    abstractly (once per name, dtype and dropout), in eval mode as from_pretrained returns it; calls noted."""
    import mer_jax.models.speech_encoder as speech_encoder
    import mer_jax.models.text_encoder as text_encoder

    built, calls = _BUILT, []

    def from_pretrained(name, *, dtype, rngs=None, dropout=True, **overrides):
        assert not overrides and name in hub_folders, name
        calls.append((name, dropout))
        config = encoders.read_config(hub_folders[name])
        if (name, dtype, dropout) not in built:
            encoder = nnx.eval_shape(lambda: encoders.from_config(config, dtype=dtype, rngs=nnx.Rngs(0),
                                                                  dropout=dropout))
            encoder.eval()
            built[name, dtype, dropout] = encoder
        return built[name, dtype, dropout], config

    monkeypatch.setattr(text_encoder, "from_pretrained", from_pretrained)
    monkeypatch.setattr(speech_encoder, "from_pretrained", from_pretrained)
    monkeypatch.setattr(speech_encoder, "load_preprocessor", lambda name: encoders.load_preprocessor(hub_folders[name]))
    return calls


def row_config(table, name):
    """The config a table row trains with (as `mer-jax table` builds it, without command-line overrides)."""
    _, _, config_file, overrides, _ = next(row for row in table.ROWS if row[0] == name)
    config = runpy.run_path(resolve(config_file or table.CONFIG))["get_config"]()
    config.update_from_flattened_dict(dict(overrides))
    return config


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


ROWS = [(dynamic_fusion_table1, row) for row in ("full", "text", "audio", "wav2vec2", "baseline")] + [
    (dynamic_fusion_table2, row) for row in ("baseline", "bilstm", "deberta", "full")]


@pytest.mark.parametrize("table, row", ROWS, ids=[f"{t.__name__.split('.')[-1]}-{r}" for t, r in ROWS])
def test_table_rows_build_at_full_size(table, row, abstract_checkpoints):
    config = row_config(table, row)
    model = build_model(config, {"num_classes": 6, "vocab_size": 128100})
    encoder, frozen, rest = EXPECTED[row]
    speech = config.audio.encoder if config.audio.encoder != "mfcc" else None
    assert abstract_checkpoints == [(name, not frozen) for name in (encoder, speech) if name]  # frozen: no dropout
    params = nnx.state(model, nnx.Param)
    groups = jax.tree.leaves(parameter_groups(params, model.encoder_modules, model.audio_encoder_modules))
    sizes = [int(np.prod(x.shape)) for x in jax.tree.leaves(params)]
    by_group = {g: sum(s for s, group in zip(sizes, groups) if group == g) for g in set(groups)}
    assert by_group.get("encoder", 0) == (ENCODER_SIZES[encoder] if encoder else 0)  # the 2e-5 learning rate
    assert by_group.get("audio_encoder", 0) == (WAV2VEC2_BASE if speech else 0)
    assert by_group["rest"] == rest
    if encoder:
        rates = {m.rate for _, m in nnx.iter_graph(model.text_encoder) if isinstance(m, nnx.Dropout)}
        assert rates == ({0.0} if frozen else {0.1}), rates  # a static encoder is a fixed feature extractor


def test_the_full_model_has_the_papers_shapes(abstract_checkpoints):
    """The defaults (configs/dynamic_fusion_iemocap.py) are the paper's sizes, layer by layer."""
    model = build_model(row_config(dynamic_fusion_table1, "full"), {"num_classes": 6, "vocab_size": 128100})
    shapes = {".".join(map(str, path)): tuple(v.shape) for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
              if path[0] != "text_encoder"}
    assert shapes == {
        "bilstm.input_kernel": (40, 2 * 4 * 128),  # both directions' four gates, 40 MFCC in
        "bilstm.recurrence.kernel": (2, 128, 4 * 128),  # per direction, 128 -> four gates
        "bilstm.bias": (2 * 4 * 128,),
        "text_projection.kernel": (768, 256), "text_projection.bias": (256,),
        "cross_attention.query.kernel": (256, 256), "cross_attention.query.bias": (256,),
        "cross_attention.key.kernel": (256, 256),
        "cross_attention.value.kernel": (256, 256), "cross_attention.value.bias": (256,),
        "cross_attention.out.kernel": (256, 256), "cross_attention.out.bias": (256,),
        "fusion_norm.scale": (256,), "fusion_norm.bias": (256,),
        "hidden.kernel": (256, 256), "hidden.bias": (256,),
        "classifier.kernel": (256, 6), "classifier.bias": (6,),
    }
    assert model.cross_attention.num_heads == 8  # d_head = 256 / 8 = 32
    assert count(nnx.state(model, nnx.Param)) == DEBERTA_V3_BASE + EXPECTED["full"][2] == 184_532_230
    encoder = model.text_encoder
    assert len(encoder.layers) == 12 and encoder.embeddings.word_embeddings.embedding.shape == (128100, 768)
