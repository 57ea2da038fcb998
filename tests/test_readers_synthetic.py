"""Corpus readers on tiny corpora built in temporary folders: layouts, field decoding, bad input.

RAVDESS and CREMA-D are not available here, so their readers are checked on trees in the official
layouts with short generated wavs; the bad-input cases (corrupt or empty audio, Git LFS pointers,
malformed names and rows, unknown labels, missing columns) are checked for every reader. Expected
values are written out by hand from each corpus' documented naming scheme.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mer_jax.data.cremad import read_cremad
from mer_jax.data.emodb import read_emodb
from mer_jax.data.labels import LabelSet
from mer_jax.data.manifest import read_manifest
from mer_jax.data.meld import read_meld, repair_text
from mer_jax.data.ravdess import read_ravdess
from mer_jax.errors import CorpusError


def wav(path, seconds=0.05, rate=16000, channels=1):
    """A short 440 Hz tone: a valid wav, 16 kHz mono unless asked otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, np.repeat(0.1 * np.sin(2 * np.pi * 440 * t)[:, None], channels, axis=1), rate)
    return path


def junk(path, data=b"RIFF\x10\x00\x00\x00WAVEnot really audio"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:c6f9\nsize 72862\n"


def problems_of(excinfo):
    return [str(p) for p in excinfo.value.problems]


# --- EmoDB -----------------------------------------------------------------------------------


def test_emodb_decodes_names_and_counts_ignored_files(tmp_path):
    wav(tmp_path / "wav" / "03a01Wa.wav")
    wav(tmp_path / "wav" / "16b10Lb.wav")
    junk(tmp_path / "wav" / "._03a01Wa.wav")
    junk(tmp_path / "wav" / "notes.txt", b"x")
    utterances, report = read_emodb(tmp_path)
    a, b = utterances
    assert (a.utterance_id, a.label, a.speaker, a.session) == ("03a01Wa", "anger", "03", "03")
    assert a.transcript == "Der Lappen liegt auf dem Eisschrank."
    assert (b.label, b.speaker) == ("boredom", "16")
    assert b.transcript == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert report.speaker_sex == {"03": "m", "16": "f"}
    assert sum(report.ignored.values()) == 2
    # Pointing the reader straight at wav/ works too.
    assert len(read_emodb(tmp_path / "wav")[0]) == 2


def test_emodb_bad_input_raises_naming_every_file_or_skips(tmp_path):
    wav(tmp_path / "wav" / "03a01Wa.wav")
    wav(tmp_path / "wav" / "03a01Xa.wav")  # unknown emotion letter
    wav(tmp_path / "wav" / "05a01Wa.wav")  # no speaker 05 in EmoDB
    wav(tmp_path / "wav" / "03z99Wa.wav")  # no sentence z99
    wav(tmp_path / "wav" / "03a01W.wav")  # malformed: no version
    junk(tmp_path / "wav" / "08a02Fa.wav")  # corrupt audio
    wav(tmp_path / "wav" / "09a02Fa.wav", rate=44100)  # not EmoDB's 16 kHz: a converted or foreign file
    wav(tmp_path / "wav" / "10a02Fa.wav", seconds=0.02)  # 20 ms: not one 25 ms analysis window
    with pytest.raises(CorpusError) as excinfo:
        read_emodb(tmp_path)
    found = problems_of(excinfo)
    assert len(found) == 7
    for name, what in [
        ("10a02Fa.wav", "audio lasts 20.0 ms, shorter than one 25 ms analysis window"),
        ("09a02Fa.wav", "sampled at 44100 Hz, but this corpus is recorded at 16000 Hz"),
        ("03a01Xa.wav", "unknown emotion code 'X'"),
        ("05a01Wa.wav", "unknown speaker code '05'"),
        ("03z99Wa.wav", "unknown sentence code 'z99'"),
        ("03a01W.wav", "malformed file name"),
        ("08a02Fa.wav", "unreadable"),
    ]:
        assert any(name in p and what in p for p in found), (name, found)

    utterances, report = read_emodb(tmp_path, on_error="skip")
    assert [u.utterance_id for u in utterances] == ["03a01Wa"]
    assert len(report.skipped) == 7 and "skipped (bad input): 7" in report.summary()


def test_label_set_excludes_and_counts(tmp_path):
    wav(tmp_path / "wav" / "03a01Wa.wav")
    wav(tmp_path / "wav" / "03a01La.wav")
    wav(tmp_path / "wav" / "03a02La.wav")
    no_boredom = LabelSet("x", ("anger",), {"anger": "anger"})
    utterances, report = read_emodb(tmp_path, label_set=no_boredom)
    assert [u.label for u in utterances] == ["anger"]
    assert report.excluded_labels == {"boredom": 2}


# --- RAVDESS ---------------------------------------------------------------------------------


def test_ravdess_decodes_names_actors_and_song(tmp_path):
    wav(tmp_path / "Actor_01" / "03-01-05-02-01-02-01.wav")  # angry, strong, kids, 2nd, actor 1
    wav(tmp_path / "Actor_02" / "03-01-02-01-02-01-02.wav")  # calm, normal, dogs, 1st, actor 2
    wav(tmp_path / "Actor_02" / "03-02-03-01-01-01-02.wav")  # song
    junk(tmp_path / "Actor_02" / "._03-01-02-01-02-01-02.wav")
    wav(tmp_path / "audio_speech_actors_01-24" / "Actor_01" / "03-01-05-02-01-02-01.wav")
    utterances, report = read_ravdess(tmp_path)
    a, b = utterances
    assert (a.utterance_id, a.label, a.speaker, a.session) == ("03-01-05-02-01-02-01", "anger", "01", "01")
    assert a.transcript == "Kids are talking by the door"
    assert (b.label, b.speaker, b.transcript) == ("calm", "02", "Dogs are sitting by the door")
    assert report.speaker_sex == {"01": "m", "02": "f"}
    assert report.ignored == {
        "song files (include_song=False)": 1,
        "macOS '._' metadata files": 1,
        f"entries of {tmp_path.name}/ other than Actor_XX folders": 1,
    }
    with_song, _ = read_ravdess(tmp_path, include_song=True, label_set="ravdess8")
    assert [u.label for u in with_song] == ["anger", "calm", "happiness"]


def test_what_decoding_changes_is_noted_in_the_summary(tmp_path):
    """A corpus without one fixed rate (RAVDESS ships 48 kHz) is decoded to 16 kHz mono: said, per file."""
    wav(tmp_path / "Actor_01" / "03-01-05-02-01-02-01.wav", rate=48000, channels=2)
    wav(tmp_path / "Actor_01" / "03-01-02-01-02-01-01.wav", rate=48000)
    wav(tmp_path / "Actor_02" / "03-01-02-01-02-01-02.wav")
    summary = read_ravdess(tmp_path)[1].summary()
    assert "note: audio files resampled from 48000 Hz to 16000 Hz: 2" in summary
    assert "note: audio files mixed from 2 channels to mono: 1" in summary
    assert "16000 Hz to" not in summary


def test_ravdess_bad_input(tmp_path):
    wav(tmp_path / "Actor_03" / "03-01-01-01-01-01-03.wav")
    wav(tmp_path / "Actor_03" / "03-01-09-01-01-01-03.wav")  # no emotion 09
    wav(tmp_path / "Actor_03" / "01-01-01-01-01-01-03.wav")  # modality 01 is video
    wav(tmp_path / "Actor_03" / "03-01-01-01-01-01-04.wav")  # actor 04 in Actor_03/
    wav(tmp_path / "Actor_03" / "03-01-01-01-01-03.wav")  # six fields
    junk(tmp_path / "Actor_03" / "03-01-03-01-01-01-03.wav", b"")  # empty file
    with pytest.raises(CorpusError) as excinfo:
        read_ravdess(tmp_path)
    found = problems_of(excinfo)
    assert len(found) == 5
    assert any("03-01-09-01-01-01-03.wav" in p and "unknown emotion code '09'" in p for p in found)
    assert any("01-01-01-01-01-01-03.wav" in p and "unknown modality code '01'" in p for p in found)
    assert any("03-01-01-01-01-01-04.wav" in p and "actor 04" in p for p in found)
    assert any("03-01-01-01-01-03.wav" in p and "malformed file name" in p for p in found)
    assert any("03-01-03-01-01-01-03.wav" in p for p in found)
    utterances, report = read_ravdess(tmp_path, on_error="skip")
    assert len(utterances) == 1 and len(report.skipped) == 5
    with pytest.raises(FileNotFoundError, match="Actor_XX"):
        read_ravdess(tmp_path / "Actor_03")


# --- CREMA-D ---------------------------------------------------------------------------------


def test_cremad_decodes_names_and_demographics(tmp_path):
    wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    wav(tmp_path / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    wav(tmp_path / "AudioWAV" / "1091_WSI_NEU_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n'
        '1001,51,"Male","Caucasian","Not Hispanic"\n1002,21,"Female","Caucasian","Not Hispanic"\n'
    )
    utterances, report = read_cremad(tmp_path, label_set="cremad6")
    assert [(u.utterance_id, u.label, u.speaker, u.session) for u in utterances] == [
        ("1001_DFA_ANG_XX", "anger", "1001", "1001"),
        ("1002_IEO_HAP_HI", "happiness", "1002", "1002"),
        ("1091_WSI_NEU_XX", "neutral", "1091", "1091"),
    ]
    assert [u.transcript for u in utterances] == [
        "Don't forget a jacket",
        "It's eleven o'clock",
        "We'll stop in a couple of minutes",
    ]
    assert report.speaker_sex == {"1001": "m", "1002": "f", "1091": "unknown"}
    assert read_cremad(tmp_path / "AudioWAV")[1].speaker_sex == report.speaker_sex
    (tmp_path / "VideoDemographics.csv").unlink()
    assert set(read_cremad(tmp_path / "AudioWAV")[1].speaker_sex.values()) == {"unknown"}


def test_cremad_bad_input_and_lfs_pointers(tmp_path):
    wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    wav(tmp_path / "AudioWAV" / "1040_ITH_SAD_X.wav")  # a naming slip the real release once had
    wav(tmp_path / "AudioWAV" / "1001_DFA_JOY_XX.wav")  # no emotion JOY
    wav(tmp_path / "AudioWAV" / "1001_ABC_ANG_XX.wav")  # no sentence ABC
    wav(tmp_path / "AudioWAV" / "1076_MTI_SAD_XX.wav", seconds=0)  # empty clip
    junk(tmp_path / "AudioWAV" / "1002_TIE_SAD_LO.wav", LFS_POINTER)
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Sex\n1001,Male\n1002,robot\n")
    with pytest.raises(CorpusError) as excinfo:
        read_cremad(tmp_path)
    found = problems_of(excinfo)
    assert len(found) == 6
    assert any("VideoDemographics.csv:3" in p and "robot" in p for p in found)
    assert any("1040_ITH_SAD_X.wav" in p and "malformed file name" in p for p in found)
    assert any("1001_DFA_JOY_XX.wav" in p and "unknown emotion code 'JOY'" in p for p in found)
    assert any("1001_ABC_ANG_XX.wav" in p and "unknown sentence code 'ABC'" in p for p in found)
    assert any("1076_MTI_SAD_XX.wav" in p and "no samples" in p for p in found)
    assert any("1002_TIE_SAD_LO.wav" in p and "git lfs pull" in p for p in found)
    utterances, report = read_cremad(tmp_path, on_error="skip")
    assert [u.utterance_id for u in utterances] == ["1001_DFA_ANG_XX"] and len(report.skipped) == 6


# --- MELD ------------------------------------------------------------------------------------

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n"


def meld_csv(path, *rows: str, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((MELD_HEADER + "".join(r + "\r\n" for r in rows)).encode(encoding))
    return path


def test_meld_original_release_encoding_quoted_commas_and_turns(tmp_path):
    # The original CSVs: cp1252 punctuation decoded as Latin-1 and saved as UTF-8 (U+0092 for ’).
    meld_csv(
        tmp_path / "train_sent_emo.csv",
        '1,"Oh, you\x92re kidding\x85",Joey,surprise,positive,3,0,2,5,"0:01:02,5","0:01:04,25"',
        "2,No.,Ross,neutral,neutral,3,2,2,5,\"0:01:05,000\",\"0:01:06,000\"",
        '3,"Well,\xa0fine.",Joey,anger,negative,4,1,2,6,"0:00:01,000","0:00:02,000"',
    )
    utterances, report = read_meld(tmp_path, "train")
    a, b, c = utterances
    assert a.transcript == "Oh, you’re kidding…" and c.transcript == "Well, fine."
    assert (a.utterance_id, a.dialogue_id, a.turn_index) == ("train_dia3_utt0", "train_dia3", 0)
    assert (b.utterance_id, b.turn_index) == ("train_dia3_utt2", 1)  # Utterance_ID 1 is absent
    assert (c.dialogue_id, c.turn_index, c.session) == ("train_dia4", 0, "S02E06")
    assert (a.start, a.end, a.session, a.label) == (62.5, 64.25, "S02E05", "surprise")
    assert report.notes == {"transcripts with repaired cp1252 punctuation": 2}
    # A file saved as cp1252 (not UTF-8 at all) is read as cp1252, and the report says so.
    row = '1,"You’re “sure”?",Ross,fear,negative,0,0,1,1,"0:00:01,000","0:00:02,000"'
    meld_csv(tmp_path / "dev_sent_emo.csv", row, encoding="cp1252")
    (u,), report = read_meld(tmp_path, "dev")
    assert u.transcript == "You’re “sure”?"
    assert report.notes == {"dev_sent_emo.csv read as cp1252 (not UTF-8)": 1}


def test_meld_repair_text():
    assert repair_text("you\x92re") == repair_text("youÂ’re") == repair_text("youâ€™re") == "you’re"
    assert repair_text("\x93Hi\x94 \x96 so\x97") == "“Hi” – so—"
    for clean in ("café’s “quoted” — fine…", "plain ascii"):
        assert repair_text(clean) == clean


def test_meld_bad_rows_and_missing_columns(tmp_path):
    meld_csv(
        tmp_path / "data" / "MELD" / "dev_sent_emo.csv",
        '1,Fine.,Joey,neutral,neutral,0,0,1,1,"0:00:01,000","0:00:02,000"',
        '2,Great.,Joey,happy,positive,0,1,1,1,"0:00:03,000","0:00:04,000"',  # line 3: unknown emotion
        '3,Hm.,Joey,neutral,neutral,x,2,1,1,"0:00:05,000","0:00:06,000"',  # line 4: bad Dialogue_ID
        '4,"Two\nlines",Joey,neutral,neutral,0,3,1,1,"1:02","0:00:08,000"',  # lines 5-6: bad StartTime
        '5,Again.,Ross,neutral,neutral,0,0,1,1,"0:00:09,000","0:00:10,000"',  # line 7: duplicate id
        '6,,Ross,neutral,neutral,0,4,1,1,"0:00:09,000","0:00:10,000"',  # line 8: empty utterance
    )
    with pytest.raises(CorpusError) as excinfo:
        read_meld(tmp_path, "dev")
    found = problems_of(excinfo)
    assert len(found) == 5
    for line, what in [
        (3, "unknown Emotion 'happy'"),
        (4, "Dialogue_ID must be a whole number"),
        (5, "StartTime must look like"),
        (7, "duplicate Dialogue_ID 0, Utterance_ID 0 (first at line 2)"),
        (8, "empty Utterance"),
    ]:
        assert any(f"dev_sent_emo.csv:{line}:" in p and what in p for p in found), (line, found)
    utterances, report = read_meld(tmp_path, "dev", on_error="skip")
    assert [u.transcript for u in utterances] == ["Fine."] and len(report.skipped) == 5

    (tmp_path / "test_sent_emo.csv").write_text("Utterance,Speaker,Emotion\nHi,Joey,joy\n")
    with pytest.raises(CorpusError, match=r"test_sent_emo.csv:1: missing column\(s\) Sentiment"):
        read_meld(tmp_path, "test", on_error="skip")
    with pytest.raises(FileNotFoundError, match="train_sent_emo.csv"):
        read_meld(tmp_path, "train")


def test_meld_attaches_audio_by_id(tmp_path):
    row = '{n},Hi.,Joey,joy,positive,{d},{u},1,1,"0:00:01,000","0:00:02,000"'
    meld_csv(tmp_path / "test_sent_emo.csv", row.format(n=1, d=7, u=0), row.format(n=2, d=7, u=1))
    wav(tmp_path / "wavs" / "test" / "dia7_utt0.wav")
    with pytest.raises(CorpusError) as excinfo:
        read_meld(tmp_path, "test", audio_dir=tmp_path / "wavs")
    (problem,) = problems_of(excinfo)
    assert "dia7_utt1.wav: audio file is missing" in problem and "test_sent_emo.csv:3" in problem
    utterances, report = read_meld(tmp_path, "test", audio_dir=tmp_path / "wavs", on_error="skip")
    assert [u.audio_path for u in utterances] == [str(tmp_path / "wavs" / "test" / "dia7_utt0.wav")]
    assert len(report.skipped) == 1


# --- Manifest --------------------------------------------------------------------------------


def test_manifest_csv_and_jsonl_give_the_same_utterances(tmp_path):
    wav(tmp_path / "clips" / "a.wav")
    wav(tmp_path / "clips" / "b.wav")
    (tmp_path / "m.csv").write_text(
        "audio,transcript,label,speaker,session,dialogue_id,turn,extra\n"
        'clips/a.wav,"Well, hello there",hap,spk1,s1,d1,0,x\n'
        "clips/b.wav,Bye.,sad,spk2,,d1,1,y\n"
    )
    rows = [
        {"audio": "clips/a.wav", "transcript": "Well, hello there", "label": "hap", "speaker": "spk1",
         "session": "s1", "dialogue_id": "d1", "turn": 0},
        {"audio": "clips/b.wav", "transcript": "Bye.", "label": "sad", "speaker": "spk2",
         "dialogue_id": "d1", "turn": 1},
    ]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    from_csv, report = read_manifest(tmp_path / "m.csv", corpus="mine")
    from_jsonl, _ = read_manifest(tmp_path / "m.jsonl", corpus="mine")
    assert from_csv == from_jsonl
    a, b = from_csv
    assert (a.utterance_id, a.corpus, a.transcript, a.label) == ("clips/a", "mine", "Well, hello there", "hap")
    assert a.audio_path == str(tmp_path / "clips" / "a.wav")
    assert (a.speaker, a.session, a.dialogue_id, a.turn_index) == ("spk1", "s1", "d1", 0)
    assert (b.session, b.turn_index) == ("spk2", 1)  # session defaults to the speaker
    assert report.label_counts == {"hap": 1, "sad": 1} and report.speaker_counts == {"spk1": 1, "spk2": 1}


def test_manifest_bad_rows_name_file_and_line(tmp_path):
    wav(tmp_path / "a.wav")
    junk(tmp_path / "bad.wav")
    (tmp_path / "m.csv").write_text(
        "audio,transcript,label,speaker,turn,dialogue_id\n"
        "a.wav,Hi,neu,s1,,\n"
        "a.wav,,neu,s1,,\n"  # line 3: empty transcript
        "gone.wav,Hi,neu,s1,,\n"  # line 4: missing audio
        "bad.wav,Hi,neu,s1,,\n"  # line 5: unreadable audio
        "a.wav,Hi,neu,s1,two,d\n"  # line 6: turn not a number
        "a.wav,Hi,neu,s1,,\n"  # line 7: same id as line 2
    )
    with pytest.raises(CorpusError) as excinfo:
        read_manifest(tmp_path / "m.csv")
    found = problems_of(excinfo)
    assert len(found) == 5
    assert any("m.csv:3:" in p and "empty or missing transcript" in p for p in found)
    assert any("gone.wav: audio file is missing (listed at" in p and "m.csv:4" in p for p in found)
    assert any("bad.wav: audio file is unreadable" in p and "m.csv:5" in p for p in found)
    assert any("m.csv:6:" in p and "turn must be a whole number" in p for p in found)
    assert any("m.csv:7:" in p and "duplicate utterance id 'a'" in p for p in found)
    utterances, report = read_manifest(tmp_path / "m.csv", on_error="skip")
    assert len(utterances) == 1 and len(report.skipped) == 5
    # Audio-only corpora may leave transcripts out.
    assert len(read_manifest(tmp_path / "m.csv", require_transcript=False, on_error="skip")[0]) == 1

    (tmp_path / "cols.csv").write_text("audio,transcript,speaker\na.wav,Hi,s1\n")
    with pytest.raises(CorpusError, match=r"cols.csv:1: missing column\(s\) label"):
        read_manifest(tmp_path / "cols.csv", on_error="skip")
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "transcript": "Hi", "label": "neu"}\nnot json\n')
    with pytest.raises(CorpusError) as excinfo:
        read_manifest(tmp_path / "m.jsonl")
    found = problems_of(excinfo)
    assert any("m.jsonl:1:" in p and "empty or missing speaker" in p for p in found)
    assert any("m.jsonl:2:" in p and "not valid JSON" in p for p in found)


def test_manifest_text_only_with_label_set(tmp_path):
    (tmp_path / "t.tsv").write_text("transcript\tlabel\tspeaker\nHello\tang\tA\nHm\txxx\tB\n")
    utterances, report = read_manifest(tmp_path / "t.tsv", require_audio=False, label_set="iemocap4")
    (u,) = utterances
    assert (u.audio_path, u.utterance_id, u.label) == (None, "t:2", "ang")
    assert report.excluded_labels == {"xxx": 1}
