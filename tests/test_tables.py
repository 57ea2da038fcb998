"""`mer-jax table`: every row of a paper table trained, and the markdown table beside the paper's numbers."""

import csv
import json
import os
import shutil
import subprocess

from mer_jax.data.iemocap import read_iemocap


def test_table_trains_each_row_and_writes_ours_beside_the_paper(demo_root, tmp_path):
    tiny = [f"--config.data.root={demo_root}", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--config.text.encoder=transformer", "--config.text.hidden=16", "--config.utterance_features.audio=mfcc_stats",
            "--config.utterance_features.extractor_epochs=1", "--config.utterance_features.extractor_d_model=16",
            "--config.features.max_frames=40", "--config.features.max_tokens=16", "--config.model.hidden=16",
            "--config.model.length=40", "--config.train.epochs=2",
            "--config.train.seeds=2", "--config.train.batch_size=4"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([shutil.which("mer-jax"), "table", "--table=lpgnet_table2", f"--workdir={tmp_path / 't'}",
                             *tiny], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| Linear (each utterance alone) | " in table and "| 81.68 |" in table  # the paper's number beside ours
    assert "| LPGNet (utterance level) | " in table and "| 87.99 |" in table
    assert "| LPGNet (Frame) | " in table and "| 83.87 |" in table
    assert "seeds: 2" in table and "held-out session(s) Ses05" in table and "audio mfcc_stats" in table
    assert "torch initialisation" in table  # the paper's configs start as PyTorch's layers do
    rows = [line for line in table.splitlines() if line.startswith(("| Linear", "| LPGNet"))]
    assert [row.count(" ± ") for row in rows[::2]] == [2, 2, 2]  # ACC and F1 of every row, mean ± std over the two seeds
    ensembles = rows[1::2]  # under each row, the two seeds' ensemble: one number per column, no spread
    assert all(": ensemble of the 2 seeds |" in row and " ± " not in row for row in ensembles), ensembles
    metrics = json.loads((tmp_path / "t" / "lpgnet" / "metrics.json").read_text())
    assert f"| {100 * metrics['ensemble']['test']['binary_accuracy']:.2f} |" in ensembles[1]
    configs = {row: json.loads((tmp_path / "t" / row / "config.json").read_text()) for row in ("linear", "lpgnet")}
    assert configs["linear"]["model"] == {"name": "linear", "dtype": "float32", "init": "torch",  # no hidden
                                          "modalities": "audio+text"}
    assert configs["lpgnet"]["model"]["hidden"] == 16
    assert json.loads((tmp_path / "t" / "frame" / "config.json").read_text())["model"]["length"] == 40
    utterances, _ = read_iemocap(demo_root, "iemocap4")
    with open(tmp_path / "t" / "frame" / "test_predictions_seed1.csv") as f:  # one line per test utterance
        assert sorted(row["utterance_id"] for row in csv.DictReader(f)) == sorted(
            u.utterance_id for u in utterances if u.session == "Ses05")
    bad = subprocess.run([shutil.which("mer-jax"), "table", "--table=lpgnet_table2", f"--workdir={tmp_path / 't'}",
                          "--config.model.hiden=16"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--config.model.hiden=16" in bad.stderr


def test_dynamic_fusion_table_lists_parameters_and_the_rows_not_built(demo_root, tmp_path):
    tiny = [f"--config.data.root={demo_root}", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--config.text.encoder=transformer", "--config.text.hidden=16", "--config.text.layers=1",
            "--config.text.dtype=float32", "--config.features.max_frames=40", "--config.features.max_tokens=16",
            "--config.model.d_model=16", "--config.model.num_heads=2", "--config.train.epochs=1",
            "--config.train.batch_size=8"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([shutil.which("mer-jax"), "table", "--table=dynamic_fusion_table1", f"--workdir={tmp_path / 't'}",
                             "--rows=text,audio,baseline,full", *tiny], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--config.text.encoder=transformer replaces the row's own setting" in result.stdout  # the baseline's BERT
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| row | Accuracy (ours) | Accuracy (paper) | F1 (ours) | F1 (paper) | UA (ours) | UA (paper) | " \
           "Params (M) (ours) | Params (M) (paper) |" in table
    assert "`--config.text.encoder=transformer`" in table  # named above the table
    assert "text encoder transformer: text, audio, full; transformer (frozen): baseline" in table
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    rows = {row[0]: row[1:] for row in cells}
    metrics = {name: json.loads((tmp_path / "t" / name / "metrics.json").read_text()) for name in ("audio", "full")}
    assert rows["Ours (the full model)"][0] == f"{100 * metrics['full']['test']['wa']:.2f}"
    assert rows["Ours (the full model)"][1] == "83.50" and rows["Ours (the full model)"][7] == "27.6"
    parameters = {name: m["folds"][0]["parameters"] for name, m in metrics.items()}
    assert 0 < parameters["audio"] < parameters["full"]
    assert rows["BiLSTM over MFCC (audio only; not in the paper)"][6] == f"{parameters['audio'] / 1e6:.2f}"
    assert rows["BLSTM+DCNN [9]"][0].startswith("not built:") and rows["BLSTM+DCNN [9]"][1] == "64.78"
    wav2vec2 = "Wav2Vec2.0 [3] (wav2vec2-base, audio only, fine-tuned)"
    assert rows[wav2vec2][0] == "not run" and rows[wav2vec2][1] == "45.46"  # left out by --rows
    baseline = json.loads((tmp_path / "t" / "baseline" / "config.json").read_text())
    assert baseline["model"]["audio_encoder"] == "mean" and baseline["model"]["fusion"] == "concat"
    assert baseline["train"]["freeze_encoder"] is True and baseline["text"]["encoder"] == "transformer"
