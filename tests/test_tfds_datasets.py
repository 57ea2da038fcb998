"""tensorflow-datasets builders: records written once, read back with `tfds.load`, equal to the readers.

Oracles: the project's readers over the same folders (counts, labels, fields), `load_audio` over the
same wav files (waveforms), `make_splits` (the seeded train/test split), and a run over the raw folder
(training from the records gives the same metrics).
"""

import json
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mer_jax.config import base_config
from mer_jax.data.audio import load_audio, waveforms
from mer_jax.data.corpora import read_corpus
from mer_jax.data.emodb import read_emodb
from mer_jax.data.iemocap import read_iemocap
from mer_jax.data.labels import get_label_set
from mer_jax.data.splits import make_splits
from mer_jax.data.tfds_datasets import MerDemo, MerEmodb, MerIemocap
from test_cli import TINY, mer_jax_here
from test_readers_public import EMODB, needs_emodb


def _records(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def _check_against_reader(builder, utterances, split_of):
    """Every record equals the reader's utterance of its id; each utterance is in its split once."""
    by_id = {u.utterance_id: u for u in utterances}
    seen = []
    for split in builder.info.splits:
        if split in ("train", "test"):
            continue
        for record in _records(builder, split):
            u = by_id[record["utterance_id"].decode()]
            assert split_of(u) == split
            assert record["emotion"].decode() == u.label and record["transcript"].decode() == u.transcript
            assert record["speaker"].decode() == u.speaker and record["session"].decode() == u.session
            assert utterances[record["order"]] is u
            for name in builder.label_sets:
                index = get_label_set(name).index(u.label)
                assert record[name] == (-1 if index is None else index)
            seen.append(u.utterance_id)
    assert sorted(seen) == sorted(by_id)
    return seen


def test_demo_records_equal_the_reader_and_hold_the_seeded_train_test_split(tmp_path):
    builder = MerDemo(data_dir=tmp_path / "tfds")
    builder.download_and_prepare()
    # the corpus the builder wrote (the demo writer is deterministic: tests/test_demo_corpus.py)
    utterances, _ = read_iemocap(tmp_path / "tfds" / "downloads" / "mer_demo_corpus", label_set=None)
    _check_against_reader(builder, utterances, lambda u: f"session{int(u.session[3:])}")
    loaded = tfds.load("mer_demo", split="session1+session2", data_dir=tmp_path / "tfds")
    assert len(loaded) == sum(u.session in ("Ses01", "Ses02") for u in utterances)

    record = next(r for r in _records(builder, "session3") if r["turn_index"] == 2)
    u = next(u for u in utterances if u.utterance_id == record["utterance_id"].decode())
    np.testing.assert_array_equal(record["audio"], load_audio(u.audio_path))  # bit-exact, as training decodes it
    assert record["dialogue_id"].decode() == u.dialogue_id and record["turn_index"] == u.turn_index
    assert tuple(record["vad"]) == u.vad

    six = [u for u in utterances if get_label_set("iemocap6").index(u.label) is not None]
    split = make_splits(six, "random", seed=0, test_fraction=0.2)[0]
    test_ids = {r["utterance_id"].decode() for r in _records(builder, "test")}
    train_ids = {r["utterance_id"].decode() for r in _records(builder, "train")}
    assert test_ids == {six[i].utterance_id for i in split.test}
    assert train_ids == {six[i].utterance_id for i in np.concatenate([split.train, split.validation])}


@needs_emodb
def test_emodb_records_equal_the_reader(tmp_path):
    builder = MerEmodb(data_dir=tmp_path / "tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=EMODB))
    utterances, _ = read_emodb(EMODB, label_set=None)
    assert builder.info.splits.total_num_examples == len(utterances) == 535
    _check_against_reader(builder, utterances, lambda u: f"speaker{u.session}")
    record = _records(builder, "speaker08")[7]
    u = next(u for u in utterances if u.utterance_id == record["utterance_id"].decode())
    np.testing.assert_array_equal(record["audio"], load_audio(u.audio_path))


def test_iemocap_builder_reads_a_release_tarball_and_refuses_a_wrong_folder(demo_root, tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with tarfile.open(manual / "IEMOCAP_full_release.tar.gz", "w:gz") as tar:
        tar.add(demo_root, arcname="IEMOCAP_full_release")
    builder = MerIemocap(data_dir=tmp_path / "tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    utterances, _ = read_iemocap(demo_root, label_set=None)
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits if s.startswith("session")} == {
        f"session{i}": sum(u.session == f"Ses0{i}" for u in utterances) for i in range(1, 6)}

    wrong = tmp_path / "wrong"
    (wrong / "Session1_backup").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no IEMOCAP release found.*Session1.*Place the release you received in manual_dir"):
        MerIemocap(data_dir=tmp_path / "tfds2").download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=wrong))


def _data_config(root, data_dir, **fields):
    data = base_config().data
    data.update(root=str(root), label_set="iemocap6", tfds_data_dir=str(data_dir), **fields)
    return data


def test_records_read_back_as_the_readers_utterances_and_stream_their_waveforms(demo_root, tmp_path):
    folder, _ = read_corpus(_data_config(demo_root, tmp_path))
    records, report = read_corpus(_data_config(demo_root, tmp_path, tfds="mer_iemocap"))
    assert [u.utterance_id for u in records] == [u.utterance_id for u in folder]
    for a, b in zip(folder, records):
        assert a == type(a)(**{**vars(b), "audio_path": a.audio_path, "corpus": a.corpus})
    assert report.kept == len(folder) and sum(report.excluded_labels.values()) > 0  # xxx, oth, ... excluded
    some = [records[i] for i in (4, 0, 9)]  # out of record order: streamed, kept until due
    for wave, u in zip(waveforms([u.audio_path for u in some]), some):
        np.testing.assert_array_equal(wave, load_audio(folder[records.index(u)].audio_path))
    with pytest.raises(ValueError, match="holds a 'iemocap' corpus"):
        read_corpus(_data_config(demo_root, tmp_path, tfds="mer_iemocap", corpus="emodb"))


def test_training_from_records_gives_the_metrics_of_training_from_the_folder(demo_run, demo_root, tmp_path):
    """The records' run against the shared demo run: the same config (test_cli's TINY) read from the folder."""
    workdir = tmp_path / "records"
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={workdir}", f"--config.data.root={demo_root}",
                          f"--config.data.cache_dir={workdir / 'cache'}", "--config.data.tfds=mer_iemocap",
                          f"--config.data.tfds_data_dir={tmp_path / 'tfds'}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    folder, records = (json.loads((run / "fold_metrics.json").read_text()) for run in (demo_run, workdir))
    assert folder["test"] == records["test"] and folder["best_epoch"] == records["best_epoch"]
    assert folder["history"] == records["history"]
