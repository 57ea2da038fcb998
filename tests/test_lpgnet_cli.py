"""LPGNet from the command line on the demo corpus: train (two seeds), re-evaluate, per-utterance predictions."""

import json

from mer_jax.data.iemocap import read_iemocap
from test_cli import mer_jax_here


def test_lpgnet_trains_evaluates_and_writes_every_test_utterance(demo_root, demo_cache, tmp_path):
    workdir = tmp_path / "run"
    result = mer_jax_here("train", "--config=configs/lpgnet_iemocap.py", f"--workdir={workdir}",
                      f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}",
                      "--config.text.encoder=transformer", "--config.text.hidden=16", "--config.text.layers=1",
                      "--config.utterance_features.text=finetuned_mean", "--config.utterance_features.audio=bilstm",
                      "--config.utterance_features.extractor_epochs=2", "--config.utterance_features.extractor_d_model=16",
                      "--config.features.max_frames=40", "--config.model.hidden=16", "--config.train.epochs=3",
                      "--config.train.seeds=2", "--config.train.batch_size=2")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    fold = metrics["folds"][0]
    assert [s["seed"] for s in fold["seeds"]] == [0, 1] and "dialogues" in fold["protocol"]
    utterances, _ = read_iemocap(demo_root, "iemocap4")
    session5 = sorted(u.utterance_id for u in utterances if u.session == "Ses05")
    for seed in (0, 1):  # one line per real test utterance: Session 5, none missing, none padded
        lines = (workdir / f"test_predictions_seed{seed}.csv").read_text().splitlines()[1:]
        assert sorted(line.split(",")[0] for line in lines) == session5
    again = mer_jax_here("evaluate", f"--workdir={workdir}")
    assert again.returncode == 0, again.stderr[-3000:]
    for s in fold["seeds"]:  # the best checkpoints, scored again
        assert f"seed {s['seed']} test: WA {s['test']['wa']:.4f}  UA {s['test']['ua']:.4f}" in again.stdout
    e = fold["ensemble"]["test"]  # the two seeds' ensemble, scored again
    assert f"test of the 2 seeds' ensemble (mean probabilities): WA {e['wa']:.4f}  UA {e['ua']:.4f}" in again.stdout
    single = mer_jax_here("predict", f"--workdir={workdir}", "--text=hello")
    assert single.returncode != 0 and "mer-jax evaluate" in single.stderr


def test_a_batch_larger_than_the_training_dialogues_is_refused_before_training(demo_root, demo_cache, tmp_path):
    workdir = tmp_path / "run"
    result = mer_jax_here("train", "--config=configs/lpgnet_iemocap.py", f"--workdir={workdir}",
                      f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}",
                      "--config.text.encoder=transformer", "--config.train.batch_size=1000")
    utterances, _ = read_iemocap(demo_root, "iemocap4")
    dialogues = {u.dialogue_id for u in utterances if u.session != "Ses05"}  # training and validation
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("mer-jax train: train.batch_size = 1000, but the training part holds only ")
    assert int(message.split("holds only ")[1].split()[0]) < len(dialogues) and "dialogues" in message
    assert not (workdir / "extractors").exists()  # refused before any extractor trained
