"""The IEMOCAP reader on the demo corpus: fields, label sets, exclusions, and bad input.

The oracle is the files themselves, read with plain string operations independent of the reader.
"""

import collections
import pathlib
import shutil

import pytest
import soundfile as sf

from mer_jax.data.iemocap import read_iemocap
from mer_jax.errors import CorpusError


def _turn_lines(root):
    """(utterance id, label) of every '[' line of every EmoEvaluation file, by plain splitting."""
    for path in sorted(pathlib.Path(root).glob("Session*/dialog/EmoEvaluation/*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith("["):
                fields = line.split("\t")
                yield fields[1], fields[2]


def test_reads_every_labelled_turn_with_its_fields(demo_root):
    turns = dict(_turn_lines(demo_root))
    utterances, report = read_iemocap(demo_root, "iemocap6")
    six = {"ang", "fru", "neu", "sad", "exc", "hap"}
    assert {u.utterance_id for u in utterances} == {k for k, v in turns.items() if v in six}
    assert report.excluded_labels == collections.Counter(v for v in turns.values() if v not in six)
    assert report.ignored["transcribed turns without a label"] > 0  # the generator writes some
    for u in utterances:
        assert u.label == turns[u.utterance_id]
        assert pathlib.Path(u.audio_path).name == u.utterance_id + ".wav"
        assert u.speaker == u.utterance_id[:5] + u.utterance_id.rsplit("_", 1)[1][0]
        assert u.session == u.utterance_id[:5]
        assert u.dialogue_id == u.utterance_id.rsplit("_", 1)[0]
        assert u.scripted == ("_script" in u.dialogue_id)
        assert u.transcript and u.start < u.end and len(u.vad) == 3
    assert len({u.speaker for u in utterances}) == 10
    by_dialogue = collections.defaultdict(list)
    for u in utterances:
        by_dialogue[u.dialogue_id].append(u)
    for turns_of_dialogue in by_dialogue.values():
        starts = [u.start for u in sorted(turns_of_dialogue, key=lambda u: u.turn_index)]
        assert starts == sorted(starts)


def test_four_class_set_merges_excited_into_happy_and_drops_frustration(demo_root):
    six, _ = read_iemocap(demo_root, "iemocap6")
    four, report = read_iemocap(demo_root, "iemocap4")
    assert {u.utterance_id for u in four} == {u.utterance_id for u in six if u.label != "fru"}
    assert report.excluded_labels["fru"] == sum(u.label == "fru" for u in six)


@pytest.fixture
def broken_corpus(demo_root, tmp_path):
    """The demo corpus with one corrupted wav and one malformed EmoEvaluation line."""
    root = tmp_path / "broken"
    shutil.copytree(demo_root, root)
    utterances, _ = read_iemocap(root, "iemocap6")
    corrupt = pathlib.Path(utterances[3].audio_path)
    corrupt.write_bytes(b"RIFF\x00\x00not really a wave file")
    emo = next(root.glob("Session2/dialog/EmoEvaluation/*.txt"))
    lines = emo.read_text().splitlines()
    bad_line = next(i for i, line in enumerate(lines) if line.startswith("[") and "\txxx\t" not in line
                    and "\toth\t" not in line)
    lines[bad_line] = lines[bad_line].replace(" - ", " to ")
    emo.write_text("\n".join(lines) + "\n")
    return root, corrupt, emo, bad_line + 1, len(utterances)


def test_bad_input_is_refused_naming_every_file_and_line(broken_corpus):
    root, corrupt, emo, line, _ = broken_corpus
    with pytest.raises(CorpusError) as error:
        read_iemocap(root, "iemocap6")
    message = str(error.value)
    assert f"{emo}:{line}: malformed turn line" in message
    assert str(corrupt) in message and "unreadable" in message
    assert len(error.value.problems) == 2


def test_skip_option_skips_and_counts(broken_corpus, demo_root):
    root, _, _, _, n = broken_corpus
    utterances, report = read_iemocap(root, "iemocap6", on_error="skip")
    assert len(report.skipped) == 2 and len(utterances) == n - 2
    assert "skipped (bad input): 2" in report.summary()
    # the malformed turn is skipped, not also counted as a transcript line without a label
    unlabelled = "transcribed turns without a label"
    assert report.ignored[unlabelled] == read_iemocap(demo_root, "iemocap6")[1].ignored[unlabelled]


@pytest.mark.parametrize("damage, expected", [
    ("unknown_label", "unknown label 'joy'"),
    ("missing_transcript", "has no line in transcriptions"),
    ("empty_transcript", "has an empty transcript"),
    ("missing_wav", "audio file is missing"),
    ("wav_at_8khz", "sampled at 8000 Hz, but this corpus is recorded at 16000 Hz"),
    ("truncated_wav", "a truncated copy"),
])
def test_each_kind_of_bad_input_names_the_problem(demo_root, tmp_path, damage, expected):
    root = tmp_path / "c"
    shutil.copytree(demo_root, root)
    u = read_iemocap(root, "iemocap6")[0][0]
    emo = root / "Session1/dialog/EmoEvaluation" / f"{u.dialogue_id}.txt"
    transcript = root / "Session1/dialog/transcriptions" / f"{u.dialogue_id}.txt"
    if damage == "unknown_label":
        emo.write_text(emo.read_text().replace(f"{u.utterance_id}\t{u.label}\t", f"{u.utterance_id}\tjoy\t"))
    elif damage == "missing_transcript":
        transcript.write_text("".join(line for line in transcript.read_text().splitlines(True)
                                      if not line.startswith(u.utterance_id + " ")))
    elif damage == "empty_transcript":
        transcript.write_text(transcript.read_text().replace(u.transcript, ""))
    elif damage == "missing_wav":
        pathlib.Path(u.audio_path).unlink()
    else:  # the first 8000 samples at another rate, or the first fifth of the file (an interrupted copy)
        wave, rate = sf.read(u.audio_path)
        sf.write(u.audio_path, wave[:8000] if damage == "wav_at_8khz" else wave[:len(wave) // 5],
                 8000 if damage == "wav_at_8khz" else rate)
    with pytest.raises(CorpusError, match=expected) as error:
        read_iemocap(root, "iemocap6")
    assert str(emo) in str(error.value)


def test_macos_resource_files_are_ignored_and_counted(demo_root, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(demo_root, root)
    (root / "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07")
    _, report = read_iemocap(root, "iemocap6")
    assert report.ignored["macOS '._' metadata files"] == 1


def test_a_session_without_label_files_is_a_problem(demo_root, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(demo_root, root)
    shutil.rmtree(root / "Session2/dialog")
    with pytest.raises(CorpusError, match="no label files") as error:
        read_iemocap(root, "iemocap4")
    assert str(root / "Session2") in str(error.value) and len(error.value.problems) == 1


def test_summary_gives_sessions_beside_the_real_release(demo_root):
    utterances, report = read_iemocap(demo_root, "iemocap4")
    sessions = collections.Counter(u.audio_path.split("/Session")[1][0] for u in utterances)
    summary = report.summary()
    assert "per session: " + ", ".join(f"Ses0{s} {n}" for s, n in sorted(sessions.items())) in summary
    assert "(the full real release gives 5531 utterances" in summary
