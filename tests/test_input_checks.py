"""Bad input found in review, each refused naming its file (and line) or skipped and counted, never a traceback:
a manifest that is not UTF-8, two manifest rows claiming one turn of a dialogue, dialogue context or a
dialogue-level model on a corpus without dialogues, audio with NaN or infinite samples."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mer_jax.data.audio import load_audio
from mer_jax.data.dialogues import dialogues_of
from mer_jax.data.features import MfccParams, preceding_turns
from mer_jax.data.manifest import read_manifest
from mer_jax.data.records import Utterance
from mer_jax.errors import ConfigError, CorpusError, InputError
from mer_jax.inference import _waveform


def wav(path, samples=None):
    """A 0.05 s float wav at 16 kHz: a 440 Hz tone unless `samples` are given."""
    if samples is None:
        samples = 0.1 * np.sin(2 * np.pi * 440 * np.arange(800) / 16000)
    sf.write(path, np.asarray(samples, np.float32), 16000, subtype="FLOAT")
    return path


def test_a_manifest_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    rows = "audio,transcript,label,speaker\na.wav,Hello,neu,s1\nb.wav,Caf\xe9,neu,s1\n"
    (tmp_path / "m.csv").write_bytes(rows.encode("latin-1"))
    for on_error in ("raise", "skip"):
        with pytest.raises(CorpusError, match=r"m.csv:3: not UTF-8 \(byte 0xe9.*save the manifest as UTF-8"):
            read_manifest(tmp_path / "m.csv", on_error=on_error)
    # the same rows in UTF-8, with the byte order mark spreadsheets write, read fine
    (tmp_path / "m.csv").write_bytes(rows.encode("utf-8-sig"))
    utterances, _ = read_manifest(tmp_path / "m.csv", on_error="skip")
    assert [u.transcript for u in utterances] == ["Hello", "Caf\xe9"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_two_manifest_rows_at_one_turn_of_a_dialogue_are_a_problem_of_the_second(tmp_path, suffix):
    wav(tmp_path / "a.wav")
    rows = [("a", "d1", 0), ("b", "d1", 1), ("c", "d2", 1), ("d", "d1", 1)]  # line 5 takes d1's turn 1 again
    if suffix == ".csv":
        text = "audio,transcript,label,speaker,utterance_id,dialogue_id,turn\n" + "".join(
            f"a.wav,Hi,neu,s1,{u},{d},{t}\n" for u, d, t in rows)
    else:
        text = "\n" + "".join(f'{{"audio": "a.wav", "transcript": "Hi", "label": "neu", "speaker": "s1", '
                                f'"utterance_id": "{u}", "dialogue_id": "{d}", "turn": {t}}}\n' for u, d, t in rows)
    (tmp_path / f"m{suffix}").write_text(text)
    with pytest.raises(CorpusError) as excinfo:
        read_manifest(tmp_path / f"m{suffix}")
    assert [str(p) for p in excinfo.value.problems] == [
        f"{tmp_path / f'm{suffix}'}:5: dialogue 'd1' turn 1 is already taken by line 3"]
    utterances, report = read_manifest(tmp_path / f"m{suffix}", on_error="skip")
    assert [u.utterance_id for u in utterances] == ["a", "b", "c"] and len(report.skipped) == 1
    dialogues_of(utterances)  # what is kept makes whole dialogues


def test_several_utterances_at_one_turn_are_refused_without_a_traceback():
    clash = [Utterance(u, "mine", "neu", "hi", None, "s", "s", dialogue_id="A", turn_index=1) for u in ("a1", "a9")]
    with pytest.raises(CorpusError, match=r"dialogue 'A' of mine has several utterances at turn\(s\) \[1\].*a1, a9"):
        dialogues_of(clash)


def test_dialogue_context_and_dialogue_models_without_dialogues_are_config_errors():
    lone = [Utterance("lone", "emodb", "neu", "hi", None, "s", "s")]
    with pytest.raises(ConfigError, match=r"no dialogue_id or turn_index \(e.g. lone\): text.context_turns needs"):
        preceding_turns(lone, [0], 1)
    with pytest.raises(ConfigError, match=r"of emodb have no dialogue_id or turn_index \(e.g. lone\); dialogue-level"):
        dialogues_of(lone)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_audio_with_nan_or_infinite_samples_is_refused_naming_the_file(tmp_path, bad):
    samples = np.full(800, 0.1)
    samples[[10, 20]] = bad
    path = wav(tmp_path / "broken.wav", samples)
    with pytest.raises(ValueError, match=r"broken.wav: 2 of 800 audio samples are NaN or infinite"):
        load_audio(path)
    # the readers find it before any features are computed: a problem naming file and manifest line, or skipped
    wav(tmp_path / "fine.wav")
    (tmp_path / "m.csv").write_text("audio,transcript,label,speaker\nfine.wav,Hi,neu,s1\nbroken.wav,Hi,neu,s1\n")
    with pytest.raises(CorpusError, match=r"broken.wav: 2 of 800 audio samples are NaN or infinite.*m.csv:3"):
        read_manifest(tmp_path / "m.csv")
    utterances, report = read_manifest(tmp_path / "m.csv", on_error="skip")
    assert [u.utterance_id for u in utterances] == ["fine"] and len(report.skipped) == 1


def test_prediction_tells_non_finite_audio_from_silence(tmp_path):
    samples = np.zeros(800)
    samples[5] = np.nan
    path = wav(tmp_path / "broken.wav", samples)
    with pytest.raises(InputError, match=r"broken.wav: 1 of 800 audio samples are NaN or infinite"):
        _waveform(str(path), MfccParams(), 16000)
    for rate in (16000, 8000):  # refused before resampling, which would fail inside librosa
        with pytest.raises(InputError, match=r"a waveform of shape \(800,\): 1 of 800 audio samples are NaN"):
            _waveform(samples, MfccParams(), rate)
    with pytest.raises(InputError, match=r"the audio is silent \(every sample is zero\)"):
        _waveform(np.zeros(800), MfccParams(), 16000)
