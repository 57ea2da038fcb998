"""The SavedModel export (mer_jax/savedmodel.py): TensorFlow, in a process where JAX cannot be imported,
gives the JAX model's class probabilities for the same batch.

Oracle: the JAX model's own prediction path (`EmotionRecognizer.predict_examples`) on real demo wavs and
transcripts. The trained demo model is the fused MFCC + small-Transformer model; randomly initialised
variants cover the other inputs and the lowering workarounds: audio-only, text-only, and a fused model
over tiny DeBERTa and wav2vec2 encoders (exact GELU's erf, fixed token and sample lengths, waveforms).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mer_jax.data.examples import numpy_batches

# Run by TensorFlow alone. argv[1]: a JSON list of jobs {"savedmodel", "batches" (an .npz of "BATCH/FIELD"
# arrays), "tflite" (also convert it to TFLite and run that)}; prints, per job, the signature's inputs and, per
# batch, the probabilities or the error.
SERVE = r"""
import json, sys
sys.modules["jax"] = sys.modules["mer_jax"] = None  # importing either now raises ImportError: TensorFlow alone
import numpy as np
import tensorflow as tf

report = []
for job in json.loads(sys.argv[1]):
    signature = tf.saved_model.load(job["savedmodel"]).signatures["serving_default"]
    arrays = np.load(job["batches"])
    batches = {}
    for key in arrays.files:
        name, field = key.split("/")
        batches.setdefault(name, {})[field] = arrays[key]
    done = {"inputs": sorted(signature.structured_input_signature[1]), "probabilities": {}, "errors": {}}
    for name, batch in batches.items():
        try:
            done["probabilities"][name] = signature(**batch)["probabilities"].numpy().tolist()
        except tf.errors.InvalidArgumentError as e:
            done["errors"][name] = e.message
    if job["tflite"]:
        runner = tf.lite.Interpreter(model_content=tf.lite.TFLiteConverter.from_saved_model(
            job["savedmodel"]).convert()).get_signature_runner()
        done["tflite"] = {name: runner(**batch)["probabilities"].tolist() for name, batch in batches.items()}
    report.append(done)
print(json.dumps(report))
"""

# Two compilers (XLA under JAX, XLA under TensorFlow, at different versions and flags) may fuse and order the
# float32 sums differently; the probabilities agree to ~1e-7 here, and 1e-4 is the bound.
ATOL = 1e-4


def _serve_without_jax(jobs: list[dict]) -> list[dict]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", SERVE, json.dumps(jobs)], check=False, env=env,
                            capture_output=True, text=True, timeout=600, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _save_batches(path: pathlib.Path, batches: dict[str, dict]) -> str:
    np.savez(path, **{f"{name}/{field}": array for name, batch in batches.items() for field, array in batch.items()})
    return str(path)


def _items(demo_root, count=2):
    wavs = sorted(pathlib.Path(demo_root).glob("Session*/sentences/wav/*/*.wav"))[:count]
    texts = ["I love the new job, it is wonderful.", "Leave me alone, I am so angry!"]
    return [(str(w), t) for w, t in zip(wavs, texts)]


def _batch(examples, inputs) -> dict[str, np.ndarray]:
    """The examples as one batch of the signature's inputs, padded as the JAX prediction pads them."""
    batch = next(numpy_batches(examples, len(examples)))
    return {name: batch[name] for name in inputs}


@pytest.fixture(scope="module")
def served_demo(demo_run, demo_root, tmp_path_factory):
    """The demo model's JAX probabilities for two real utterances, and what TensorFlow computes from its
    SavedModel (free shapes) and from a fixed-shape one converted to TFLite, for the same batch, a batch trimmed to
    its longest real frames and tokens, a control with the transcripts swapped, and frames beyond max_frames."""
    from mer_jax.inference import EmotionRecognizer
    from mer_jax.savedmodel import LABELS, save, serving_inputs
    from test_cli import mer_jax_here

    tmp = tmp_path_factory.mktemp("savedmodel")
    folder = tmp / "model"
    exported = mer_jax_here("export", f"--workdir={demo_run}", f"--out={folder}", "--format=savedmodel")
    assert exported.returncode == 0, exported.stderr[-3000:]
    savedmodel = folder / "savedmodel"
    assert f"TensorFlow SavedModel: {savedmodel}" in exported.stdout
    recognizer = EmotionRecognizer.from_pretrained(folder)
    examples = recognizer.examples_of_files(_items(demo_root))
    expected = recognizer.predict_examples(examples)
    inputs = serving_inputs(recognizer.config)
    full = _batch(examples, inputs)
    frames, tokens = int(full["mfcc_length"].max()), int(full["attention_mask"].sum(1).max())
    trimmed = {**full, "mfcc": full["mfcc"][:, :frames], "input_ids": full["input_ids"][:, :tokens],
               "attention_mask": full["attention_mask"][:, :tokens]}
    swapped = {**full, "input_ids": full["input_ids"][::-1], "attention_mask": full["attention_mask"][::-1]}
    too_long = {**full, "mfcc": np.concatenate([full["mfcc"], full["mfcc"][:, :1]], axis=1)}
    fixed = save(recognizer, tmp / "fixed", batch_size=len(examples))
    jobs = [{"savedmodel": str(savedmodel), "tflite": False, "batches": _save_batches(
                tmp / "free.npz", {"full": full, "trimmed": trimmed, "swapped": swapped, "too_long": too_long})},
            {"savedmodel": str(fixed), "tflite": True, "batches": _save_batches(tmp / "fixed.npz", {"full": full})}]
    free_shapes, fixed_shapes = _serve_without_jax(jobs)
    return {"expected": expected, "recognizer": recognizer, "labels": savedmodel / LABELS, "free": free_shapes,
            "fixed": fixed_shapes, "max_frames": recognizer.config.features.max_frames}


def test_savedmodel_without_jax_matches_the_jax_model(served_demo):
    expected, got = served_demo["expected"], served_demo["free"]
    assert got["inputs"] == ["attention_mask", "input_ids", "mfcc", "mfcc_length"]
    np.testing.assert_allclose(got["probabilities"]["full"], expected, atol=ATOL)
    # free lengths: the batch cut to its longest real frames and tokens scores the same
    np.testing.assert_allclose(got["probabilities"]["trimmed"], expected, atol=ATOL)
    assert served_demo["labels"].read_text().split() == list(served_demo["recognizer"].label_set.class_names)


def test_the_comparison_can_fail(served_demo):
    """Control: each utterance's audio with the other's transcript moves the probabilities far beyond the tolerance,
    so a SavedModel that mixed up its inputs would fail the parity test."""
    swapped = np.array(served_demo["free"]["probabilities"]["swapped"])
    assert np.abs(swapped - served_demo["expected"]).max() > 100 * ATOL


def test_more_frames_than_the_model_reads_are_refused(served_demo):
    error = served_demo["free"]["errors"]["too_long"]
    assert f"frames <= {served_demo['max_frames']}" in error, error


def test_fixed_shapes_convert_to_tflite(served_demo):
    got = served_demo["fixed"]
    np.testing.assert_allclose(got["probabilities"]["full"], served_demo["expected"], atol=ATOL)
    np.testing.assert_allclose(got["tflite"]["full"], served_demo["expected"], atol=ATOL)


def _speech_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    """A tiny wav2vec2's configs (random weights: the model initialises them), as a checkpoint folder has them."""
    import transformers

    transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                                conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8,
                                num_conv_pos_embedding_groups=2).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


VARIANTS = {
    "audio": {"modalities": "audio"},
    "text": {"modalities": "text"},
    "deberta+wav2vec2": {"modalities": "audio+text", "pretrained": True},
}


@pytest.fixture(scope="module")
def served_variants(demo_model, demo_root, tmp_path_factory):
    """Randomly initialised variants of the demo model (its config, tokenizer and sizes), each saved as a SavedModel
    and scored on the demo utterances by JAX and by TensorFlow without JAX."""
    import transformers
    from flax import nnx

    from mer_jax.config import load_run_config
    from mer_jax.encoders import from_config, read_config
    from mer_jax.inference import EmotionRecognizer
    from mer_jax.models.registry import build_model
    from mer_jax.savedmodel import fixed_dimensions, save, serving_inputs
    from mer_jax.training.steps import SplitModel

    tmp = tmp_path_factory.mktemp("variants")
    sizes = json.loads((demo_model / "model_sizes.json").read_text())
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(demo_model / "tokenizer"))
    results, jobs = {}, []
    for name, variant in VARIANTS.items():
        config = load_run_config(demo_model / "config.json")
        config.model.modalities = variant["modalities"]
        encoders = {}
        if variant.get("pretrained"):
            config.audio.encoder = str(_speech_checkpoint(tmp / "wav2vec2"))
            config.text.encoder = "tiny-deberta"  # built here, not loaded
            deberta = transformers.DebertaV2Config(
                vocab_size=sizes["vocab_size"], hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=24, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"],
                position_biased_input=False, type_vocab_size=0)
            speech = from_config(read_config(config.audio.encoder), rngs=nnx.Rngs(2), dropout=False)
            encoders = {"text_encoder": from_config(deberta.to_dict(), rngs=nnx.Rngs(1), dropout=False),
                        "speech_encoder": speech}
        split = SplitModel.of(build_model(config, sizes, seed=3, **encoders))
        recognizer = EmotionRecognizer(config, tokenizer, split, split.params, split.other)
        examples = recognizer.examples_of_files(_items(demo_root))
        batch = _batch(examples, serving_inputs(config))
        results[name] = {"expected": recognizer.predict_examples(examples), "fixed": fixed_dimensions(recognizer),
                         "inputs": sorted(batch)}
        jobs.append({"savedmodel": str(save(recognizer, tmp / name)), "tflite": False,
                     "batches": _save_batches(tmp / f"{name}.npz", {"full": batch})})
    for result, served in zip(results.values(), _serve_without_jax(jobs)):
        result["served"] = served
    return results


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_variants_match_without_jax(served_variants, name):
    result = served_variants[name]
    assert result["served"]["inputs"] == result["inputs"]  # only what the model reads
    assert np.ptp(result["expected"]) > 100 * ATOL  # the classes are told apart: a real comparison
    np.testing.assert_allclose(result["served"]["probabilities"]["full"], result["expected"], atol=ATOL)


def test_what_the_signature_reads(served_variants):
    assert served_variants["audio"]["inputs"] == ["mfcc", "mfcc_length"]
    assert served_variants["text"]["inputs"] == ["attention_mask", "input_ids"]
    pretrained = served_variants["deberta+wav2vec2"]
    assert pretrained["inputs"] == ["attention_mask", "input_ids", "waveform", "waveform_length"]
    assert pretrained["fixed"] == {"samples", "tokens"}  # DeBERTa's numpy positions; the speech encoder's lowering


def test_dialogue_models_are_refused(tmp_path):
    from mer_jax.config import base_config
    from mer_jax.errors import ConfigError
    from mer_jax.savedmodel import export_savedmodel

    (tmp_path / "config.json").write_text(base_config("lpgnet").to_json())
    with pytest.raises(ConfigError, match="lpgnet reads dialogues of utterance vectors"):
        export_savedmodel(tmp_path)
