"""A small SYNTHETIC corpus in the exact IEMOCAP_full_release layout, for demos and tests.

It is not IEMOCAP and not speech: the audio is a harmonic "voice" built with numpy, the transcripts
are template sentences. It is designed so that a model must fuse both modalities, and so that
dialogue context helps:

* the transcript carries valence only (positive / negative / neutral wording, drawn from the same
  sentence pools whatever the arousal), except in a quarter of the turns, short backchannels
  ("Yeah.", "I see.") that say nothing about valence: only the conversation around them does;
* the voice carries arousal only: pitch level and range (relative to the speaker's own range),
  loudness and syllable rate, with random syllable counts so that duration says nothing about text;
* every speaker has their own pitch range and timbre, so absolute pitch alone identifies nobody's
  arousal;
* the emotion tends to persist across neighbouring turns of a dialogue (a sticky Markov chain), and
  every dialogue has a theme emotion it keeps coming back to, as IEMOCAP's scripts and
  improvisations do.

Labels follow IEMOCAP's codes, so both label sets exist: ang (negative, high arousal), fru
(negative, medium), sad (negative, low), neu (neutral, medium), hap (positive, medium) and exc
(positive, high); a few turns get xxx / oth (no agreement), which every experiment excludes.

Layout written (see ../shared/IEMOCAP.md)::

    root/README.txt
    root/SessionN/dialog/EmoEvaluation/<dialog>.txt
    root/SessionN/dialog/transcriptions/<dialog>.txt
    root/SessionN/sentences/wav/<dialog>/<utterance>.wav    (16 kHz, mono, 16-bit)
"""

from __future__ import annotations

import pathlib

import numpy as np
import soundfile as sf

from mer_jax.data.audio import SAMPLE_RATE

# emotion -> (valence, arousal level)
EMOTIONS = {
    "ang": ("negative", 1),
    "fru": ("negative", 0),
    "sad": ("negative", -1),
    "neu": ("neutral", 0),
    "hap": ("positive", 0),
    "exc": ("positive", 1),
}
_EMOTION_NAMES = list(EMOTIONS)
_EMOTION_WEIGHTS = np.array([0.17, 0.2, 0.15, 0.2, 0.13, 0.15])
_EVALUATOR_WORDS = {
    "ang": "Anger", "fru": "Frustration", "sad": "Sadness", "neu": "Neutral state",
    "hap": "Happiness", "exc": "Excited",
}
_NO_AGREEMENT = {"xxx": "Other", "oth": "Other"}

_SUBJECTS = ["the meeting", "the trip", "your brother", "the new job", "this apartment", "the letter",
             "the weekend", "the car", "our plan", "the dinner", "the phone call", "the results"]
_CORE = {
    "positive": ["{s} was wonderful", "I love {s}", "{s} made me so glad", "thank you so much for {s}",
                 "{s} is the best news", "I am really proud of {s}", "{s} went great",
                 "what a lovely surprise {s} was"],
    "negative": ["{s} was awful", "I hate {s}", "{s} ruined everything", "I am sick of {s}",
                 "{s} is a terrible mess", "nobody cares about {s}", "{s} went wrong again",
                 "I never wanted {s}"],
    "neutral": ["{s} is on tuesday", "I need to check {s}", "{s} starts at nine", "we talked about {s}",
                "{s} is in the other room", "let me write down {s}", "{s} takes two hours",
                "I will ask about {s}"],
}
_BACKCHANNELS = ["Yeah.", "Okay.", "Right.", "I see.", "Mm, go on.", "Really?", "Is that so?", "Oh.",
                 "Uh-huh, and then?", "Hm, tell me more."]
BACKCHANNEL_RATE = 0.25
DEMO_README = "SYNTHETIC demo corpus written by mer_jax (mer_jax.data.demo)"
_FILLERS = ["", "", "", "well ", "you know ", "okay so ", "listen "]
_TAILS = ["", "", "", " today", " I think", " right now", " you know"]


def is_demo_corpus(root) -> bool:
    """Whether `root` is a corpus `write_demo_corpus` wrote (its README says so), not a real IEMOCAP release."""
    readme = pathlib.Path(root) / "README.txt"
    return readme.is_file() and readme.read_text(errors="replace").startswith(DEMO_README)


def write_demo_corpus(root, *, seed: int = 0, dialogues_per_session: int = 6,
                      turns_per_dialogue: int = 24) -> pathlib.Path:
    """Write the synthetic corpus under `root` (deterministic in `seed`) and return `root`."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.txt").write_text(
        f"{DEMO_README}, seed {seed}.\nIt reproduces the IEMOCAP_full_release folder layout and file formats only; the "
        "audio is numpy-generated and the transcripts are template sentences. It is NOT IEMOCAP.\n"
    )
    scripts = _scripts(np.random.default_rng(seed + 7919))
    for session in range(1, 6):
        voices = {sex: _voice(rng, sex) for sex in "FM"}
        themes = rng.permutation(_EMOTION_NAMES)  # every emotion is some dialogue's theme in every session
        for d in range(dialogues_per_session):
            marker = "FM"[d % 2]
            scripted = d >= dialogues_per_session // 2
            name = (f"Ses{session:02d}{marker}_script{d + 1:02d}_1" if scripted
                    else f"Ses{session:02d}{marker}_impro{d + 1:02d}")
            _write_dialogue(root / f"Session{session}", name, voices, scripts if scripted else None,
                            themes[d % len(themes)], turns_per_dialogue, rng)
    return root


def _voice(rng, sex: str) -> dict:
    """A speaker: base pitch, pitch-range scale, timbre (formant scale) and loudness."""
    return {
        "f0": rng.uniform(175, 245) if sex == "F" else rng.uniform(90, 140),
        "range": rng.uniform(0.7, 1.3),
        "formant": rng.uniform(1.05, 1.2) if sex == "F" else rng.uniform(0.85, 1.0),
        "gain": rng.uniform(0.8, 1.25),
    }


def _scripts(rng) -> dict[str, list[str]]:
    """Fixed lines per valence that every session's scripted dialogues reuse, as in IEMOCAP."""
    return {v: [_sentence(rng, v) for _ in range(6)] for v in _CORE}


def _sentence(rng, valence: str) -> str:
    core = rng.choice(_CORE[valence]).format(s=rng.choice(_SUBJECTS))
    text = rng.choice(_FILLERS) + core + rng.choice(_TAILS)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "!", "?"])


def _write_dialogue(session_dir, name, voices, scripts, theme, n_turns, rng) -> None:
    wav_dir = session_dir / "sentences" / "wav" / name
    wav_dir.mkdir(parents=True, exist_ok=True)
    emo_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    transcript_lines = []
    counters = {"F": 0, "M": 0}
    emotion = theme
    t = rng.uniform(1.0, 4.0)
    for turn in range(n_turns):
        sex = "FM"[turn % 2] if rng.random() < 0.85 else "MF"[turn % 2]
        if rng.random() < 0.3:  # the mood persists; it changes now and then, often back to the theme
            emotion = theme if rng.random() < 0.3 else rng.choice(_EMOTION_NAMES, p=_EMOTION_WEIGHTS)
        valence, arousal = EMOTIONS[emotion]
        wave = _speak(rng, voices[sex], arousal + rng.normal(0, 0.12))
        start, end = t, t + len(wave) / SAMPLE_RATE
        t = end + rng.uniform(0.2, 1.5)
        utt = f"{name}_{sex}{counters[sex]:03d}"
        counters[sex] += 1
        if rng.random() < BACKCHANNEL_RATE:
            text = rng.choice(_BACKCHANNELS)
        else:
            text = rng.choice(scripts[valence]) if scripts else _sentence(rng, valence)
        transcript_lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
        if rng.random() < 0.04:  # an unlabelled turn, as in the real transcriptions
            transcript_lines.append(f"{name}_{sex}XX{turn % 10} [{end:08.4f}-{end + 0.3:08.4f}]: Mm-hmm.")
        label = rng.choice(["xxx", "oth"]) if rng.random() < 0.05 else emotion
        vad = _vad(rng, valence, arousal)
        emo_lines.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]")
        word = _EVALUATOR_WORDS.get(label) or _NO_AGREEMENT[label]
        for evaluator in ("C-E1", "C-E2", "C-E3"):
            emo_lines.append(f"{evaluator}:\t{word};\t()")
        for evaluator in ("A-E1", "A-E2"):
            v, a, d = (int(np.clip(round(x + rng.normal(0, 0.5)), 1, 5)) for x in vad)
            emo_lines.append(f"{evaluator}:\tval {v}; act {a}; dom  {d};\t()")
        emo_lines.append("")
        sf.write(wav_dir / f"{utt}.wav", wave, SAMPLE_RATE, subtype="PCM_16")
    for sub, lines in (("EmoEvaluation", emo_lines), ("transcriptions", transcript_lines)):
        folder = session_dir / "dialog" / sub
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")


def _vad(rng, valence: str, arousal: float) -> tuple[float, float, float]:
    v = {"negative": 1.8, "neutral": 3.0, "positive": 4.2}[valence]
    a = 3.0 + 1.2 * arousal
    return tuple(float(np.clip(x + rng.normal(0, 0.3), 1, 5)) for x in (v, a, a))


def _speak(rng, voice: dict, arousal: float) -> np.ndarray:
    """A harmonic 'voice' whose pitch, pitch range, loudness and rate rise with `arousal` (~-1..1)."""
    rate = 4.0 * 1.45**arousal  # syllables per second
    pitch_offset = 2.5 * arousal  # semitones above the speaker's base
    pitch_range = voice["range"] * (3.0 + 2.2 * arousal)  # semitones of movement per syllable
    loudness = 0.1 * voice["gain"] * 2.2**arousal
    n_syllables = int(rng.integers(4, 13))
    pieces = [np.zeros(int(rng.uniform(0.05, 0.2) * SAMPLE_RATE), np.float32)]
    for _ in range(n_syllables):
        length = int(SAMPLE_RATE / rate * rng.uniform(0.55, 0.85))
        contour = pitch_offset + pitch_range * (rng.uniform(-0.5, 0.5) + rng.uniform(-0.5, 0.5)
                                                * np.linspace(-1, 1, length))
        f0 = voice["f0"] * 2 ** (contour / 12)
        pieces.append(_vowel(rng, f0, voice["formant"]) * loudness * rng.uniform(0.8, 1.2))
        pieces.append(np.zeros(int(SAMPLE_RATE / rate) - length, np.float32))
    wave = np.concatenate(pieces)
    wave += rng.normal(0, 0.002, wave.shape)
    return np.clip(wave, -1, 1).astype(np.float32)


_VOWEL_FORMANTS = [(730, 1090), (270, 2290), (300, 870), (530, 1840), (640, 1190)]


def _vowel(rng, f0: np.ndarray, formant_scale: float) -> np.ndarray:
    """A syllable: harmonics of the f0 contour shaped by two formant resonances and a Hann envelope."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    f1, f2 = (f * formant_scale for f in _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))])
    k = np.arange(1, 25)[:, None]
    harmonic_freq = k * f0[None, :]
    amplitude = (np.exp(-(((harmonic_freq - f1) / 150) ** 2)) + 0.6 * np.exp(-(((harmonic_freq - f2) / 200) ** 2))
                 + 0.05 / k) * (harmonic_freq < SAMPLE_RATE / 2)
    harmonics = np.cumprod(np.broadcast_to(np.exp(1j * phase), amplitude.shape), axis=0).imag  # sin(k phase)
    wave = (amplitude * harmonics).sum(axis=0)
    return (wave * np.hanning(len(f0))).astype(np.float32)
