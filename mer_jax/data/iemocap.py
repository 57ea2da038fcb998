"""Reader for the official IEMOCAP_full_release layout (and the synthetic demo corpus that copies it).

Labels come from ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` (the consensus line of each turn),
text from ``SessionN/dialog/transcriptions/<dialog>.txt``, audio from
``SessionN/sentences/wav/<dialog>/<utterance>.wav``. See ../shared/IEMOCAP.md for the format.

Utterances whose label is outside the chosen label set are excluded and counted. Transcription
lines for turns that have no label (ids absent from EmoEvaluation) are ignored and counted. Bad
input (a Session folder without label files, a malformed turn line, an unknown label, a labelled
turn without transcript, a missing or unreadable wav, a wav not at the release's 16 kHz, a wav
shorter than half its turn's time span) is a `Problem` naming the file and line: all of them are
raised together, or skipped and counted with ``on_error="skip"``.
"""

from __future__ import annotations

import pathlib
import re

from mer_jax.data.audio import SAMPLE_RATE
from mer_jax.data.corpus import Collector
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, ReadReport, Utterance

IEMOCAP_LABELS = frozenset("neu hap exc sad ang fru sur fea dis oth xxx".split())

# Counts on the real release, printed beside a reader's so a user sees at once that their copy is whole.
RELEASE_COUNTS = {
    "iemocap4": "5531 utterances (ang 1103, hap+exc 1636, neu 1708, sad 1084; "
                "per session 1085, 1023, 1151, 1031, 1241)",
    "iemocap6": "7380 utterances (fru 1849)",
}

_TURN = re.compile(
    r"^\[(?P<start>\d+(?:\.\d+)?) - (?P<end>\d+(?:\.\d+)?)\]\t(?P<utt>\S+)\t(?P<label>\S+)\t"
    r"\[(?P<v>[-\d.]+), (?P<a>[-\d.]+), (?P<d>[-\d.]+)\]\s*$"
)
_TRANSCRIPT = re.compile(r"^(?P<utt>\S+) \[[^\]]*\]:\s?(?P<text>.*)$")
_UTTERANCE_ID = re.compile(r"^(?P<dialog>Ses(?P<session>\d\d)[FM]_\w+?)_(?P<speaker>[FM])\d{3}$")


def read_iemocap(root, label_set: str | LabelSet = "iemocap4", *,
                 on_error: OnError = "raise") -> tuple[list[Utterance], ReadReport]:
    """Read every labelled utterance of an IEMOCAP-layout corpus at `root`, in dialogue order."""
    root = pathlib.Path(root)
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise FileNotFoundError(f"{root}: no Session* folders; is this an IEMOCAP_full_release folder?")
    collector = Collector(f"iemocap ({root})", label_set=label_set, on_error=on_error, sample_rate=SAMPLE_RATE)
    collector.report.release_counts = RELEASE_COUNTS.get(getattr(collector.label_set, "name", None), "")
    for session_dir in sessions:
        emo_files = sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not emo_files:
            collector.problem(session_dir, "no label files (dialog/EmoEvaluation/*.txt): an incomplete copy of the release?")
        for emo_file in emo_files:
            if emo_file.name.startswith("._"):
                collector.ignore("macOS '._' metadata files")
            else:
                _read_dialogue(session_dir, emo_file, collector)
    return collector.finish()


def _read_dialogue(session_dir, emo_file, collector: Collector) -> None:
    dialog = emo_file.stem
    turns = []  # (line number, parsed turn line)
    listed = set()  # every utterance id the turn lines name, parsed or not
    for number, line in enumerate(emo_file.read_text(errors="replace").splitlines(), 1):
        if not line.startswith("["):
            continue
        listed.update(re.findall(rf"{re.escape(dialog)}_[FM]\d{{3}}", line))
        match = _TURN.match(line)
        if match is None:
            collector.problem(emo_file, f"malformed turn line: {line!r}", number)
        elif match["label"] not in IEMOCAP_LABELS:
            collector.problem(emo_file, f"unknown label {match['label']!r} (known: {sorted(IEMOCAP_LABELS)})", number)
        elif _UTTERANCE_ID.match(match["utt"]) is None or not match["utt"].startswith(dialog + "_"):
            collector.problem(emo_file, f"utterance id {match['utt']!r} does not belong to dialogue {dialog}", number)
        else:
            turns.append((number, match))
    turns.sort(key=lambda t: float(t[1]["start"]))
    transcripts = _read_transcripts(session_dir / "dialog" / "transcriptions" / f"{dialog}.txt", listed, collector)
    for turn_index, (number, m) in enumerate(turns):
        if collector.excludes(m["label"]):
            continue
        utt = m["utt"]
        text = transcripts.get(utt) if transcripts is not None else None
        problem = (f"labelled turn {utt} has no transcription file for {dialog}" if transcripts is None
                   else f"labelled turn {utt} has no line in transcriptions/{dialog}.txt" if text is None
                   else f"labelled turn {utt} has an empty transcript" if not text.strip()
                   else None)
        if problem is not None:
            collector.problem(emo_file, problem, number)
            continue
        ids = _UTTERANCE_ID.match(utt)
        collector.add(Utterance(
            utterance_id=utt, corpus="iemocap", label=m["label"], transcript=text.strip(),
            audio_path=str(session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"),
            speaker=f"Ses{ids['session']}{ids['speaker']}", session=f"Ses{ids['session']}", dialogue_id=dialog,
            turn_index=turn_index, start=float(m["start"]), end=float(m["end"]),
            vad=(float(m["v"]), float(m["a"]), float(m["d"])), scripted="_script" in dialog,
        ), source=emo_file, line=number, seconds=float(m["end"]) - float(m["start"]))


def _read_transcripts(path, labelled: set[str], collector: Collector) -> dict[str, str] | None:
    """utterance id -> text for the turns the label file lists (`labelled`); None when the file is missing."""
    if not path.exists():
        return None
    texts = {}
    for line in path.read_text(errors="replace").splitlines():
        match = _TRANSCRIPT.match(line)
        if match is None:
            if line.strip():
                collector.ignore("transcription lines that are not turns")
        elif match["utt"] in labelled:
            texts[match["utt"]] = match["text"]
        else:
            collector.ignore("transcribed turns without a label")
    return texts
