"""`mer-jax table`: every row of a paper table trained, and the markdown table beside the paper's numbers."""

import csv
import importlib
import json
import pathlib

import pytest

from mer_jax.data.iemocap import read_iemocap
from test_cli import mer_jax_here

# The papers' numbers, typed from papers/dynamic_fusion.md and papers/lpgnet.md (not read from the table
# configs): table module -> row name (or MISSING label) -> one number per column of the module (None: the
# paper has none there). The dynamic-fusion tables' columns are Accuracy, F1, UA (never reported), Params.
PAPER = {
    "dynamic_fusion_table1": {  # Table 1
        "text": (63.21, 60.8, None, 44.0),  # DeBERTa V3 [12]
        "audio": (None, None, None, None),  # not in the paper
        "wav2vec2": (45.46, 42.3, None, 94.4),  # Wav2Vec2.0 [3]
        "baseline": (64.4, 61.2, None, 18.3),  # Baseline (Mean Pooling + Static BERT)
        "full": (83.5, 82.1, None, 27.6),  # Ours
        "BLSTM+DCNN [9]": (64.78, 62.1, None, 12.4),
        "COGMEN [19]": (78.9, 76.5, None, 28.7),
    },
    "dynamic_fusion_table2": {  # Table 2 has no Params column: its first and last rows are Table 1's rows
        "baseline": (64.4, 61.2, None, 18.3),
        "bilstm": (71.2, 68.5, None, None),  # +LSTM Temporal Modeling
        "deberta": (76.8, 74.1, None, None),  # + DeBERTa Fine-tuning
        "full": (83.5, 82.1, None, 27.6),  # +Cross-Modal Attention
    },
    "lpgnet_table2": {"linear": (81.68, 80.75), "lpgnet": (87.99, 87.96), "frame": (83.87, 83.68)},  # ACC, F1
    "lpgnet_table3": {
        "full": (87.99, 87.96), "text": (81.39, 81.19), "audio": (84.53, 84.55), "no_inter": (86.22, 86.26),
        "no_intra": (87.03, 86.95), "no_ffn": (86.87, 86.75), "no_gates": (86.62, 86.59),
        "no_context": (None, None),  # not in the paper
    },
    "lpgnet_table6": {  # lambda_task / lambda_CE / lambda_KL
        "task1_ce1_kl1": (87.35, 87.38), "task1_ce0_kl1": (86.36, 86.53), "task1_ce1_kl0": (87.27, 87.26),
        "task1.5_ce1_kl0": (87.59, 87.58), "task1.5_ce1_kl0.3": (87.99, 87.96),
    },
    "lpgnet_table7": {  # Happy, Sad, Neutral, Angry, Excited, Frustrated, Overall
        "four_class": (92.06, 85.38, 83.99, 86.75, None, None, 87.83),
        "six_class": (51.3, 79.1, 73.99, 72.19, 77.83, 68.59, 71.78),
        "SDT* (4-class; SDT on LPGNet's features)": (89.72, 86.35, 82.32, 88.15, None, None, 86.62),
        "SDT* (6-class)": (38.59, 78.09, 69.52, 73.53, 70.63, 65.13, 67.47),
    },
    "lpgnet_demo": {row: (None,) * 4 for row in ("full", "no_context", "text", "audio", "dynamic_fusion")},
}
TABLES = sorted(p.stem for p in (pathlib.Path(importlib.import_module("mer_jax.configs.tables").__file__).parent
                                 ).glob("*.py") if p.stem != "__init__")


def test_every_table_module_is_checked():
    assert sorted(PAPER) == TABLES


@pytest.mark.parametrize("name", TABLES)
def test_the_tables_carry_the_papers_numbers(name):
    table = importlib.import_module(f"mer_jax.configs.tables.{name}")
    carried = {row: paper for row, _, _, _, paper in table.ROWS}
    carried.update({label: paper for label, _, paper in getattr(table, "MISSING", ())})
    assert carried == PAPER[name]
    assert all(len(paper) == len(table.COLUMNS) for paper in carried.values())


def paper_cells(table_md: str, label: str, columns: int) -> list[str]:
    """The paper's cells of the row `label` in a written table.md (ours and the paper's alternate)."""
    cells = next([c.strip() for c in line.strip().strip("|").split("|")] for line in table_md.splitlines()
                 if line.startswith(f"| {label} |"))
    return cells[2:2 * columns + 1:2]


def test_table_trains_each_row_and_writes_ours_beside_the_paper(demo_root, tmp_path):
    """Two rows trained, each from its own config file (the linear baseline over utterance vectors, LPGNet
    (Frame) over frame sequences); LPGNet itself (the table's default config) is left out by --rows and listed
    with the paper's numbers."""
    tiny = [f"--config.data.root={demo_root}", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--config.text.encoder=transformer", "--config.text.hidden=16", "--config.utterance_features.audio=mfcc_stats",
            "--config.utterance_features.extractor_epochs=1", "--config.utterance_features.extractor_d_model=16",
            "--config.features.max_frames=40", "--config.features.max_tokens=16", "--config.model.hidden=16",
            "--config.model.length=40", "--config.train.epochs=2",
            "--config.train.seeds=2", "--config.train.batch_size=4"]
    result = mer_jax_here("table", "--table=lpgnet_table2", f"--workdir={tmp_path / 't'}", "--rows=linear,frame", *tiny)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "t" / "table.md").read_text()
    for row, label in (("linear", "Linear (each utterance alone)"), ("lpgnet", "LPGNet (utterance level)"),
                       ("frame", "LPGNet (Frame)")):  # the paper's numbers beside ours, in the row's own cells
        assert paper_cells(table, label, 2) == [f"{x:.2f}" for x in PAPER["lpgnet_table2"][row]], label
    assert "seeds: 2" in table and "held-out session(s) Ses05" in table and "audio mfcc_stats" in table
    assert "torch initialisation" in table  # the paper's configs start as PyTorch's layers do
    rows = [line for line in table.splitlines() if line.startswith(("| Linear", "| LPGNet (Frame)"))]
    assert [row.count(" ± ") for row in rows[::2]] == [2, 2]  # ACC and F1 of every row, mean ± std over the two seeds
    ensembles = rows[1::2]  # under each row, the two seeds' ensemble: one number per column, no spread
    assert all(": ensemble of the 2 seeds |" in row and " ± " not in row for row in ensembles), ensembles
    metrics = json.loads((tmp_path / "t" / "frame" / "metrics.json").read_text())
    assert f"| {100 * metrics['ensemble']['test']['binary_accuracy']:.2f} |" in ensembles[1]
    not_run = next(line for line in table.splitlines() if line.startswith("| LPGNet (utterance level) |"))
    assert not_run.split("|")[2].strip() == "not run" and not (tmp_path / "t" / "lpgnet").exists()
    configs = {row: json.loads((tmp_path / "t" / row / "config.json").read_text()) for row in ("linear", "frame")}
    assert configs["linear"]["model"] == {"name": "linear", "dtype": "float32", "init": "torch",  # no hidden
                                          "modalities": "audio+text"}
    assert configs["frame"]["model"]["hidden"] == 16 and configs["frame"]["model"]["length"] == 40
    utterances, _ = read_iemocap(demo_root, "iemocap4")
    with open(tmp_path / "t" / "frame" / "test_predictions_seed1.csv") as f:  # one line per test utterance
        assert sorted(row["utterance_id"] for row in csv.DictReader(f)) == sorted(
            u.utterance_id for u in utterances if u.session == "Ses05")
    bad = mer_jax_here("table", "--table=lpgnet_table2", f"--workdir={tmp_path / 't'}", "--config.model.hiden=16")
    assert bad.returncode != 0 and "--config.model.hiden=16" in bad.stderr


def test_dynamic_fusion_table_lists_parameters_and_the_rows_not_built(demo_root, tmp_path):
    """Two rows trained (the audio-only model and the paper's baseline: each row's own overrides, a frozen
    encoder, a replaced text encoder); the rows left out by --rows and the methods not built are listed with
    the paper's numbers."""
    tiny = [f"--config.data.root={demo_root}", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--config.text.encoder=transformer", "--config.text.hidden=16", "--config.text.layers=1",
            "--config.text.dtype=float32", "--config.features.max_frames=40", "--config.features.max_tokens=16",
            "--config.model.d_model=16", "--config.model.num_heads=2", "--config.train.epochs=1",
            "--config.train.batch_size=8"]
    result = mer_jax_here("table", "--table=dynamic_fusion_table1", f"--workdir={tmp_path / 't'}",
                          "--rows=audio,baseline", *tiny)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--config.text.encoder=transformer replaces the row's own setting" in result.stdout  # the baseline's BERT
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| row | Accuracy (ours) | Accuracy (paper) | F1 (ours) | F1 (paper) | UA (ours) | UA (paper) | " \
           "Params (M) (ours) | Params (M) (paper) |" in table
    assert "`--config.text.encoder=transformer`" in table  # named above the table
    assert "text encoder transformer: audio; transformer (frozen): baseline" in table
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    rows = {row[0]: row[1:] for row in cells}
    metrics = {name: json.loads((tmp_path / "t" / name / "metrics.json").read_text()) for name in ("audio", "baseline")}
    baseline = "Baseline (mean-pooled MFCC + static BERT, concatenated)"
    assert rows[baseline][0] == f"{100 * metrics['baseline']['test']['wa']:.2f}"
    assert paper_cells(table, baseline, 4) == ["64.40", "61.20", "–", "18.3"]
    assert paper_cells(table, "DeBERTa-V3 (text only, fine-tuned)", 4) == ["63.21", "60.80", "–", "44.0"]
    parameters = {name: m["folds"][0]["parameters"] for name, m in metrics.items()}
    assert 0 < parameters["audio"] < parameters["baseline"]
    assert rows["BiLSTM over MFCC (audio only; not in the paper)"][6] == f"{parameters['audio'] / 1e6:.2f}"
    assert rows["BLSTM+DCNN [9]"][0].startswith("not built:") and rows["BLSTM+DCNN [9]"][1] == "64.78"
    for label, paper in (("Wav2Vec2.0 [3] (wav2vec2-base, audio only, fine-tuned)", "45.46"),
                         ("Ours (the full model)", "83.50")):  # left out by --rows
        assert rows[label][0] == "not run" and rows[label][1] == paper
    audio = json.loads((tmp_path / "t" / "audio" / "config.json").read_text())
    assert audio["model"]["modalities"] == "audio"  # the row's own override
    baseline = json.loads((tmp_path / "t" / "baseline" / "config.json").read_text())
    assert baseline["model"]["audio_encoder"] == "mean" and baseline["model"]["fusion"] == "concat"
    assert baseline["train"]["freeze_encoder"] is True and baseline["text"]["encoder"] == "transformer"
