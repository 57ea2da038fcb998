"""The `mer-jax` command end to end on small demo corpora: train, bad input, skip, predict, config checks."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

from mer_jax.data.iemocap import read_iemocap

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY = ["--config.train.epochs=2", "--config.train.batch_size=16", "--config.features.max_frames=80",
        "--config.model.d_model=32", "--config.text.hidden=32"]


def mer_jax(*args, cwd=REPO):
    """The console script, in a process of its own, as a user runs it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    return subprocess.run([shutil.which("mer-jax"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def mer_jax_here(*args, cwd=REPO) -> subprocess.CompletedProcess:
    """`mer-jax ARGS` in this test process: the console script's own flag parsing and `main`, without the new
    Python process that spends most of a short command importing JAX, TensorFlow and transformers again.

    What a process owns is set and put back: the working directory, sys.argv (ml_collections reads config
    overrides from it), absl's parsed flags and the config override flags they define. The exit status comes
    from SystemExit (a message passed to sys.exit goes to stderr, as Python prints it); any other exception is
    a traceback on stderr and status 1, as in a process."""
    import contextlib
    import io
    import sys
    import traceback

    from absl import flags

    import mer_jax.cli as cli

    argv, parsed = ["mer-jax", *map(str, args)], flags.FLAGS
    for name in [name for name in parsed if name.startswith("config.")]:
        delattr(parsed, name)
    parsed.unparse_flags()
    for overrides in cli.COMMAND_OVERRIDES.values():
        overrides.clear()
    out, err, status = io.StringIO(), io.StringIO(), 0
    before = os.getcwd(), sys.argv
    try:
        os.chdir(cwd)
        sys.argv = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(cli._parse_flags(argv))
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) or e.code is None else 1
                if status == 1 and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 (a bug: the traceback, as a process prints it)
                traceback.print_exc()
                status = 1
    finally:
        os.chdir(before[0])
        sys.argv = before[1]
    return subprocess.CompletedProcess(argv, status or 0, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def broken_corpus(demo_root, tmp_path_factory):
    """The demo corpus with one corrupted wav and one malformed EmoEvaluation line."""
    root = tmp_path_factory.mktemp("cli") / "broken"
    shutil.copytree(demo_root, root)
    utterances, _ = read_iemocap(root, "iemocap6")
    corrupt = pathlib.Path(utterances[5].audio_path)
    corrupt.write_bytes(b"this is not audio")
    emo = next(root.glob("Session3/dialog/EmoEvaluation/*.txt"))
    text = emo.read_text()
    emo.write_text(text.replace("\t[", "\t(", 1))  # the first turn line loses its [V, A, D] bracket
    return root, corrupt, emo


def test_bad_corpus_is_refused_naming_both_problems(broken_corpus, tmp_path):
    root, corrupt, emo = broken_corpus
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={tmp_path / 'run'}",
                     f"--config.data.root={root}", f"--config.data.cache_dir={tmp_path / 'cache'}", *TINY)
    assert result.returncode != 0
    assert str(corrupt) in result.stderr and "unreadable" in result.stderr
    assert f"{emo}:3: malformed turn line" in result.stderr
    assert "skip_bad_input" in result.stderr  # the message says how to go on anyway


@pytest.fixture(scope="module")
def trained_run(broken_corpus, tmp_path_factory):
    """A tiny fused run on the broken corpus with bad input skipped, in bfloat16 with a class-weighted loss,
    delta MFCCs and SpecAugment masks."""
    root, _, _ = broken_corpus
    workdir = tmp_path_factory.mktemp("run") / "fused"
    result = mer_jax("train", "--config=configs/demo.py", f"--workdir={workdir}", f"--config.data.root={root}",
                     f"--config.data.cache_dir={workdir.parent / 'cache'}", "--config.data.skip_bad_input=True",
                     "--config.model.dtype=bfloat16", "--config.train.class_weights=balanced",
                     "--config.features.deltas=2", "--config.augment.time_masks=2", "--config.augment.freq_masks=2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_skip_option_completes_and_reports_two_skipped(trained_run):
    workdir, result = trained_run
    assert "skipped (bad input): 2" in result.stdout
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["skipped_bad_input"] == 2
    excluded = ", ".join(f"{k} {v}" for k, v in sorted(metrics["excluded_by_label"].items()))  # the reader's counts
    assert excluded and f"excluded by label: {excluded}" in result.stdout
    report = (workdir / "report.txt").read_text()
    assert f"excluded by the label set: {excluded}" in report
    assert "2 utterance(s) skipped" in report and "held-out session(s) Ses05" in report
    assert "computes in bfloat16" in report and "training loss weighted by class (balanced)" in report
    for name in ("config.json", "test_predictions.csv", "tokenizer", "checkpoints/best", "checkpoints/latest",
                 "report.md", "confusion_matrix.png", "training_curves.png"):
        assert (workdir / name).exists(), name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((workdir.parent / "cache" / "xla").glob("jit_guarded-*"))  # the (guarded) train step, compiled, kept
    predictions = (workdir / "test_predictions.csv").read_text().splitlines()
    assert len(predictions) - 1 == metrics["folds"][0]["sizes"]["test"]
    assert all(line.startswith("Ses05") for line in predictions[1:])


def test_predict_and_evaluate_use_the_trained_run_from_any_folder(trained_run, broken_corpus, demo_root, tmp_path):
    workdir, _ = trained_run
    wav = next(pathlib.Path(demo_root).glob("Session5/sentences/wav/*/*.wav"))
    result = mer_jax_here("predict", f"--workdir={workdir}", f"--audio={wav}", "--text=I love the new job.", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    label, probabilities = result.stdout.strip().split("  ", 1)
    assert label in {"anger", "frustration", "neutral", "sadness", "excitement", "happiness"} and probabilities.count(",") == 5
    saved = json.loads((workdir / "config.json").read_text())["data"]
    assert saved["root"] == str(broken_corpus[0]) and pathlib.Path(saved["cache_dir"]).is_absolute()
    moved = tmp_path / "moved"  # the corpus somewhere else now: said with an override of where the data is
    shutil.copytree(broken_corpus[0], moved)
    result = mer_jax_here("evaluate", f"--workdir={workdir}", f"--config.data.root={moved}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    test = json.loads((workdir / "metrics.json").read_text())["test"]
    assert f"WA {test['wa']:.4f}  UA {test['ua']:.4f}" in result.stdout  # the best checkpoint, scored again
    assert f"wrote {workdir / 'confusion_matrix.png'}" in result.stdout
    refused = mer_jax_here("evaluate", f"--workdir={workdir}", "--config.model.d_model=8", cwd=tmp_path)
    assert refused.returncode != 0 and "only data.root, data.cache_dir, data.tfds_data_dir" in refused.stderr


@pytest.mark.parametrize("audio, text, message", [
    ("missing.wav", "Hello there.", "missing.wav: no such audio file"),
    ("garbage.wav", "Hello there.", "garbage.wav: cannot decode audio"),
    ("short.wav", "Hello there.", "shorter than one 25 ms MFCC window"),
    ("silent.wav", "Hello there.", "the audio is silent"),
    ("stereo8k.wav", "  ", "empty transcript for"),
    (None, "Hello there.", "no audio: this model hears audio"),
])
def test_predict_refuses_what_no_model_can_score_in_one_line(trained_run, tmp_path, audio, text, message):
    import soundfile as sf

    (tmp_path / "garbage.wav").write_bytes(b"RIFF but not really a wav file")
    sf.write(tmp_path / "short.wav", np.full(200, 0.1, np.float32), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "stereo8k.wav", np.random.default_rng(0).normal(0, 0.1, (8000, 2)).astype(np.float32), 8000)
    workdir, _ = trained_run
    result = mer_jax_here("predict", f"--workdir={workdir}", *([f"--audio={tmp_path / audio}"] if audio else []),
                     f"--text={text}")
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    if audio == "stereo8k.wav":  # the same file with a transcript: stereo at 8 kHz is mixed down and resampled
        fine = mer_jax_here("predict", f"--workdir={workdir}", f"--audio={tmp_path / audio}", "--text=Hello there.")
        assert fine.returncode == 0, fine.stderr[-2000:]


@pytest.mark.parametrize("override, message", [
    ("--config.train.epoch=3", 'Did you mean "epochs"'),
    ("--config.train.epochs=three", "--config.train.epochs=three: invalid literal for int()"),
    ("--config.model.modalities=video", "model.modalities = 'video': must be one of"),
])
def test_bad_config_is_refused_with_a_clear_message(override, message, tmp_path, demo_root):
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={tmp_path}", f"--config.data.root={demo_root}",
                     override)
    assert result.returncode != 0
    assert message in result.stderr


def test_history_has_every_epoch_and_agrees_with_the_best_checkpoint(trained_run):
    workdir, _ = trained_run
    fold = json.loads((workdir / "fold_metrics.json").read_text())
    history = fold["history"]
    assert [entry["epoch"] for entry in history] == [1, 2]
    for entry in history:
        assert 0 <= entry["train_accuracy"][0] <= 1 and entry["train_loss"][0] > 0 and entry["validation_loss"][0] > 0
    # the best checkpoint, scored again on the validation part, is the model that epoch measured
    best = history[fold["best_epoch"] - 1]
    assert abs(best["validation_accuracy"][0] - fold["validation"]["wa"]) < 1e-6
    assert abs(best["validation_loss"][0] - fold["validation"]["loss"]) < 1e-4
    report = (workdir / "report.txt").read_text()
    assert "overfit ratio (train/val acc)" in report
    last = history[-1]
    assert f"{last['train_accuracy'][0] / last['validation_accuracy'][0]:.2f}" in report.splitlines()[-1]


def test_attention_maps_of_one_utterance_and_top_tokens_per_class(trained_run, broken_corpus, tmp_path):
    import csv

    import matplotlib.image
    from transformers import AutoTokenizer

    workdir, _ = trained_run
    root, corrupt, _ = broken_corpus
    utterance = next(u for u in read_iemocap(root, "iemocap6", on_error="skip")[0]
                     if u.session == "Ses05" and u.audio_path != str(corrupt))
    result = mer_jax_here("attention", f"--workdir={workdir}", f"--utterance={utterance.utterance_id}", f"--out={tmp_path / 'u'}")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("heads.png", "mean.png"):
        image = matplotlib.image.imread(tmp_path / "u" / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    with open(tmp_path / "u" / "tokens.csv") as f:
        rows = list(csv.DictReader(f))
    tokenizer = AutoTokenizer.from_pretrained(str(workdir / "tokenizer"))
    ids = tokenizer(utterance.transcript, truncation=True, max_length=32)["input_ids"]
    assert [row["token"] for row in rows] == tokenizer.convert_ids_to_tokens(ids)
    # every frame's weights over the real tokens sum to one, so the per-token means do too
    assert abs(sum(float(row["mean_weight"]) for row in rows) - 1.0) < 1e-4
    assert sorted(int(row["rank"]) for row in rows) == list(range(1, len(rows) + 1))

    top = mer_jax_here("attention", f"--workdir={workdir}", "--top_tokens", f"--out={tmp_path / 't'}")
    assert top.returncode == 0, top.stderr[-3000:]
    with open(tmp_path / "t" / "top_tokens.csv") as f:
        ranked = list(csv.DictReader(f))
    assert ranked and {row["class"] for row in ranked} <= {"ang", "fru", "sad", "neu", "hap", "exc"}
    assert all(0 < float(row["mean_weight"]) <= 1 and int(row["count"]) >= 3 for row in ranked)
    assert not {row["token"] for row in ranked} & set(tokenizer.all_special_tokens)

    refused = mer_jax_here("attention", f"--workdir={workdir}")
    assert refused.returncode != 0 and "--utterance" in refused.stderr


def test_cross_corpus_evaluation_maps_labels_and_counts_the_rest(trained_run, tmp_path):
    import soundfile as sf

    # an EmoDB-format corpus: 2 speakers x 6 emotions; anger, happiness, neutral, sadness map onto the run's
    # iemocap6 classes, boredom and fear are excluded and counted
    rng = np.random.default_rng(0)
    (tmp_path / "emodb" / "wav").mkdir(parents=True)
    for speaker in ("03", "08"):
        for code in "WFNTLA":
            sf.write(tmp_path / "emodb" / "wav" / f"{speaker}a01{code}a.wav", rng.normal(0, 0.1, 16000), 16000)
    workdir, _ = trained_run
    label_map = "anger=ang,happiness=hap,neutral=neu,sadness=sad"
    result = mer_jax_here("evaluate", f"--workdir={workdir}", "--corpus=emodb", f"--root={tmp_path / 'emodb'}",
                     f"--label_map={label_map}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "excluded by the label set: boredom 2, fear 2" in result.stdout
    assert f"labels mapped by {label_map}" in result.stdout and "cross-corpus" in result.stdout
    metrics = json.loads((workdir / "cross_corpus_emodb" / "metrics.json").read_text())
    assert metrics["folds"][0]["sizes"]["test"] == 8 and sum(map(sum, metrics["folds"][0]["test"]["confusion_matrix"])) == 8
    assert (workdir / "cross_corpus_emodb" / "report.md").exists()
    bad = mer_jax_here("evaluate", f"--workdir={workdir}", "--corpus=emodb", f"--root={tmp_path / 'emodb'}",
                  "--label_map=anger=furious")
    assert bad.returncode != 0 and "data.label_map entry 'anger=furious'" in bad.stderr and "Traceback" not in bad.stderr


def test_help_lists_every_command_and_each_command_shows_its_own_flags():
    from mer_jax import __version__
    from mer_jax.cli import COMMANDS

    top = mer_jax("--help")  # the console script itself
    assert top.returncode == 0
    listed = [line.split()[0] for line in top.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == list(COMMANDS)  # every command, one line each
    assert mer_jax_here().stdout == top.stdout  # no command: the same list
    assert mer_jax_here("--version").stdout.strip() == f"mer-jax {__version__}"
    predict = mer_jax_here("predict", "--help")
    assert predict.returncode == 0 and predict.stdout.startswith("usage: mer-jax predict")
    flags = {line.split()[0] for line in predict.stdout.split("flags:\n")[1].split("\n\n")[0].splitlines()}
    assert flags == {"--workdir", "--audio", "--text", "--transcripts", "--manifest", "--out", "--format"}  # its own only
    assert "example:\n  mer-jax predict --workdir=" in predict.stdout
    typo = mer_jax_here("trian")
    assert typo.returncode != 0 and "did you mean train?" in typo.stderr and "Traceback" not in typo.stderr


def test_configs_lists_the_built_in_configs_and_tables_and_config_prints_every_field(tmp_path):
    import runpy

    listing = mer_jax_here("configs", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr[-2000:]
    names = {line.split()[0] for line in listing.stdout.splitlines() if line.startswith("  ")}
    shipped = {p.stem for folder in (REPO / "configs", REPO / "configs" / "tables") for p in folder.glob("*.py")} - {"__init__"}
    assert names == shipped
    assert re.search(r"^  lpgnet_table3 +LPGNet, Table 3: modalities and LPIA ablations", listing.stdout, re.M)

    printed = mer_jax_here("config", "--config=configs/lpgnet_demo.py", "--config.train.epochs=7", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr[-2000:]
    values = dict(line.split(" = ", 1) for line in printed.stdout.splitlines() if not line.startswith("#"))
    expected = runpy.run_path(str(REPO / "configs" / "lpgnet_demo.py"))["get_config"]()
    expected.train.epochs = 7
    flat = {f"{s}.{k}" if isinstance(v, dict) else s: repr(tuple(x) if isinstance(x, list) else x)
            for s, v in expected.to_dict().items() for k, x in (v.items() if isinstance(v, dict) else [(None, v)])}
    assert values == flat  # every field, with its value and the override applied
    lines = printed.stdout.splitlines()
    assert lines[lines.index("train.optimizer = 'adam'") - 1].startswith("# adamw (decoupled weight decay) | adam")

    missing = mer_jax_here("train", "--config=configs/nope.py", "--workdir=run", cwd=tmp_path)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    assert "no config 'configs/nope.py'" in missing.stderr and "lpgnet_demo" in missing.stderr
