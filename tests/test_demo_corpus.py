"""The synthetic demo corpus: deterministic, labelled as synthetic, with its planted signals."""

import collections
import filecmp

import numpy as np
import soundfile as sf

from mer_jax.data.demo import _BACKCHANNELS, _CORE, BACKCHANNEL_RATE, EMOTIONS, write_demo_corpus
from mer_jax.data.iemocap import read_iemocap


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kwargs = dict(dialogues_per_session=2, turns_per_dialogue=4)
    a, b, c = (write_demo_corpus(tmp_path / name, seed=s, **kwargs) for name, s in (("a", 1), ("b", 1), ("c", 2)))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 50
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)
    assert not all((c / f).exists() and filecmp.cmp(a / f, c / f, shallow=False) for f in files)
    assert "SYNTHETIC" in (a / "README.txt").read_text() and "NOT IEMOCAP" in (a / "README.txt").read_text()


def test_text_carries_valence_except_in_backchannels_and_voice_carries_arousal(demo_root):
    utterances, _ = read_iemocap(demo_root, "iemocap6")
    stems = {v: [(s.split("{s}")[0].strip() or s.split("{s}")[1].strip()).lower() for s in pool]
             for v, pool in _CORE.items()}
    loudness = collections.defaultdict(list)
    backchannels = 0
    for u in utterances:
        valence, _ = EMOTIONS[u.label]
        text = u.transcript.lower()
        if u.transcript in _BACKCHANNELS:
            backchannels += 1
            assert not any(stem in text for pool in stems.values() for stem in pool), u.transcript
        else:
            assert any(stem in text for stem in stems[valence]), (u.label, u.transcript)
        wave, rate = sf.read(u.audio_path)
        assert rate == 16000 and wave.ndim == 1
        loudness[EMOTIONS[u.label][1]].append(np.sqrt(np.mean(wave**2)))
    low, mid, high = (np.median(loudness[a]) for a in (-1, 0, 1))
    assert low < mid < high
    assert abs(backchannels / len(utterances) - BACKCHANNEL_RATE) < 0.1


def test_emotion_persists_across_neighbouring_turns(demo_root):
    utterances, _ = read_iemocap(demo_root, "iemocap6")
    same = [a.label == b.label for a, b in zip(utterances, utterances[1:]) if a.dialogue_id == b.dialogue_id]
    chance = sum(n * n for n in collections.Counter(u.label for u in utterances).values()) / len(utterances) ** 2
    assert np.mean(same) > 2 * chance


def test_every_dialogue_has_a_theme_emotion(tmp_path):
    root = write_demo_corpus(tmp_path / "demo", seed=5, turns_per_dialogue=8)  # the demo's 30 dialogues, shorter
    utterances, _ = read_iemocap(root, "iemocap6")
    dialogues = collections.defaultdict(list)
    for u in utterances:
        dialogues[u.dialogue_id].append(u.label)
    share_of_commonest = np.mean([collections.Counter(labels).most_common(1)[0][1] / len(labels)
                                  for labels in dialogues.values()])
    assert len(dialogues) == 30 and share_of_commonest > 0.4
