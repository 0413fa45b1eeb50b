"""Spoken utterances: espeak-ng speech in LibriSpeech's layout, speaker-disjoint splits, an on-disk cache."""

import shutil

import numpy as np
import pytest
import soundfile

from tokcom.training.data.real_datasets import decode_audio
from tokcom.training.data.spoken import (
    LIBRISPEECH_SPLITS,
    SAMPLING_RATE,
    SpeechCache,
    generate_spoken,
    librispeech_features,
    speakers,
    spoken_sentences,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng (.ci/run installs it)")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """2 train, 1 validation, 2 test speakers x 2 utterances, synthesised once into a fresh cache."""
    cache = SpeechCache(tmp_path_factory.mktemp("speech-cache"))
    root = tmp_path_factory.mktemp("LibriSpeech")
    splits = generate_spoken(root, 2, 1, 2, utterances_per_speaker=2, seed=0, cache=cache)
    return root, splits, cache


def test_sentences_and_speakers_are_deterministic_and_varied():
    assert spoken_sentences(20, seed=3) == spoken_sentences(20, seed=3) != spoken_sentences(20, seed=4)
    texts = spoken_sentences(40, seed=0)
    assert any("cube" in t or "sphere" in t or "cylinder" in t for t in texts)  # about shapes scenes
    assert any(not any(s in t for s in ("cube", "sphere", "cylinder")) for t in texts)  # and general sentences
    people = speakers(6, seed=0)
    assert len({(p.voice, p.speed, p.pitch) for p in people}) == 6 and len({p.speaker_id for p in people}) == 6
    assert all(130 <= p.speed <= 190 and 30 <= p.pitch <= 70 for p in people)
    with pytest.raises(ValueError, match="utterances_per_speaker"):
        generate_spoken("unused", 1, 1, 1, utterances_per_speaker=0, cache=object())


def test_missing_espeak_names_the_debian_package():
    with pytest.raises(FileNotFoundError, match="Debian package `espeak-ng`"):
        SpeechCache(executable="espeak-ng-not-installed")


@needs_espeak
def test_librispeech_layout_and_transcripts(spoken):
    root, splits, _ = spoken
    assert sorted(splits) == ["test", "train", "validation"]
    assert {p.name for p in root.iterdir()} == set(LIBRISPEECH_SPLITS.values())
    row = splits["test"][0]
    speaker, chapter, utterance = row["id"].split("-")
    folder = root / "test-clean" / speaker / chapter
    assert (folder / f"{row['id']}.flac").is_file() and row["file"] == str(folder / f"{row['id']}.flac")
    lines = (folder / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
    assert lines[0] == f"{row['id']} {row['text']}" and row["text"] == row["text"].upper()
    assert splits["train"].features == librispeech_features() and (row["speaker_id"], row["chapter_id"]) == (
        int(speaker), int(chapter))  # fmt: skip


@needs_espeak
def test_splits_are_speaker_disjoint_and_audio_is_16khz_speech(spoken):
    _, splits, _ = spoken
    ids = {name: set(ds["speaker_id"]) for name, ds in splits.items()}
    assert len(ids["train"]) == 2 and len(ids["test"]) == 2 and len(ids["validation"]) == 1
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["validation"])
    for row in splits["train"]:
        info = soundfile.info(row["file"])
        assert info.samplerate == SAMPLING_RATE and info.channels == 1 and info.format == "FLAC"
        samples, rate = decode_audio(row["audio"])
        assert rate == SAMPLING_RATE and 0.4 < len(samples) / rate < 8.0
        assert np.sqrt(np.mean(samples**2)) > 0.01  # not silence


@needs_espeak
def test_cache_means_a_second_run_synthesises_nothing(spoken, tmp_path):
    root, splits, cache = spoken
    assert cache.synthesized == 10 and cache.reused == 0
    again = SpeechCache(cache.cache_dir)
    second = generate_spoken(tmp_path / "again", 2, 1, 2, utterances_per_speaker=2, seed=0, cache=again)
    assert again.synthesized == 0 and again.reused == 10
    assert second["test"]["text"] == splits["test"]["text"]
    first_bytes = open(splits["test"][0]["file"], "rb").read()
    assert open(second["test"][0]["file"], "rb").read() == first_bytes
