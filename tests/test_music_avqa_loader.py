"""Tests of the real MUSIC-AVQA / VALOR loaders on a tiny fixture in the real files' layout."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from tokcom.training.data import music_avqa
from tokcom.training.data import synthetic_avqa as S

WAV_RATE_HZ = 44100
NUM_FILES = 12  # frames per fixture video; frame i is filled with colour (10 * i, 255 - 10 * i, video number)

ANNOTATIONS = [
    {
        "video_id": "00000823",
        "question_id": 16,
        "type": '["Audio-Visual", "Existential"]',
        "question_content": "Is the <Object> in the video always playing?",
        "templ_values": '["cello"]',
        "question_deleted": 0,
        "anser": "yes",
    },
    {
        "video_id": "00000259",
        "question_id": 157,
        "type": '["Audio-Visual", "Counting"]',
        "question_content": "How many types of musical instruments sound in the video?",
        "templ_values": "[]",
        "question_deleted": 0,
        "anser": "two",
    },
    {
        "video_id": "00000823",
        "question_id": 50,
        "type": '["Audio-Visual", "Temporal"]',
        "question_content": "Where is the <FL> sounding instrument?",
        "templ_values": '["first"]',
        "question_deleted": 0,
        "anser": "left",
    },
]


def _write_video(root, video_id, number, duration_s=2.0, frequency_hz=440.0):
    frames_dir = root / "vivit_frames" / video_id
    frames_dir.mkdir(parents=True)
    for i in range(NUM_FILES):
        Image.new("RGB", (64, 36), (10 * i, 255 - 10 * i, number)).save(frames_dir / f"frame_{i + 1:04d}.png")
    (root / "ast_audio").mkdir(exist_ok=True)
    t_s = np.arange(int(duration_s * WAV_RATE_HZ)) / WAV_RATE_HZ
    tone = np.sin(2 * np.pi * frequency_hz * t_s)
    stereo = np.stack([0.6 * tone, 0.2 * tone], axis=1)  # mono mix: 0.4 * tone
    wavfile.write(root / "ast_audio" / f"{video_id}.wav", WAV_RATE_HZ, (stereo * 32767).astype(np.int16))


@pytest.fixture
def music_root(tmp_path):
    root = tmp_path / "MUSIC-AVQA"
    _write_video(root, "00000823", 1, frequency_hz=440.0)
    _write_video(root, "00000259", 2, frequency_hz=1000.0)
    annotation_file = tmp_path / "avqa-test.json"
    annotation_file.write_text(json.dumps(ANNOTATIONS))
    return annotation_file, root


def test_loads_real_layout_into_the_synthetic_schema(music_root):
    annotation_file, root = music_root
    ds = music_avqa.load_music_avqa(annotation_file, root, split_name="test")
    assert len(ds) == 3 and str(ds.split) == "test"
    synthetic = S.generate_avqa(2, seed=0)
    assert ds.column_names == synthetic.column_names and ds.features == synthetic.features
    assert ds["question_id"] == [16, 157, 50]
    assert ds["type"] == [a["type"] for a in ANNOTATIONS]
    assert ds["templ_values"] == [a["templ_values"] for a in ANNOTATIONS]
    assert ds["anser"] == ["yes", "two", "left"]
    assert ds["question"][0] == "Is the cello in the video always playing?"
    assert ds["question"][2] == "Where is the first sounding instrument?"
    rows = ds.with_format("numpy", dtype=None)[:]
    assert rows["video"].shape == (3, 8, 32, 32, 3) and rows["video"].dtype == np.uint8
    assert rows["audio"].shape == (3, 16000) and rows["audio"].dtype == np.float32
    assert rows["sampling_rate"].tolist() == [16000] * 3
    # frames: 8 uniformly spaced of 12 (segment centres), resized, colours intact
    expected_index = np.floor((np.arange(8) + 0.5) * NUM_FILES / 8).astype(int)
    np.testing.assert_array_equal(rows["video"][0, :, 5, 5, 0], 10 * expected_index)
    assert (rows["video"][1, ..., 2] == 2).all() and (rows["video"][0, ..., 2] == 1).all()
    np.testing.assert_array_equal(rows["video"][0], rows["video"][2])  # same video_id, same media
    # audio: stereo int16 44.1 kHz -> mono float32 16 kHz, amplitude 0.4, pitch kept
    audio = rows["audio"][0]
    assert abs(np.abs(audio[1000:-1000]).max() - 0.4) < 0.01
    spectrum = np.abs(np.fft.rfft(rows["audio"][1]))
    assert abs(np.fft.rfftfreq(16000, 1 / 16000)[spectrum.argmax()] - 1000.0) <= 1.0
    mixed = datasets.concatenate_datasets([ds, synthetic])
    assert len(mixed) == len(ds) + len(synthetic)


def test_other_sizes_padding_and_alignment(music_root):
    annotation_file, root = music_root
    ds = music_avqa.load_music_avqa(
        annotation_file, root, num_frames=4, frame_size=16, sampling_rate=8000, max_duration_s=3.0
    )
    row = ds.with_format("numpy", dtype=None)[0]
    assert row["video"].shape == (4, 16, 16, 3) and row["audio"].shape == (24000,)
    assert np.abs(row["audio"][16100:]).max() == 0.0  # 2 s clip zero-padded to 3 s
    assert np.abs(row["audio"][:15900]).max() > 0.3
    aligned = music_avqa.load_music_avqa(annotation_file, root, num_frames=3, align_frames_to_audio=True)
    # 12 frames over 2 s, audio window 1 s: frames come from the first 6 only
    red = aligned.with_format("numpy", dtype=None)[0]["video"][:, 0, 0, 0]
    assert red.tolist() == [10, 30, 50]


def test_jpg_frames_and_valor_captions(tmp_path):
    root = tmp_path / "VALOR"
    _write_video(root, "vid0", 3)
    frames_dir = root / "vivit_frames" / "vid1"
    frames_dir.mkdir(parents=True)
    for i in range(1, 4):  # the official MUSIC-AVQA extraction's naming
        Image.new("RGB", (40, 30), (0, 0, 60 * i)).save(frames_dir / f"{i:06d}.jpg")
    wavfile.write(root / "ast_audio" / "vid1.wav", 16000, np.zeros(8000, np.float32))
    annotation_file = tmp_path / "desc_test.json"
    captions = [{"video_id": "vid0", "desc": "a tone"}, {"video_id": "vid1", "desc": "blue"}]
    annotation_file.write_text(json.dumps(captions))
    ds = music_avqa.load_valor_captions(annotation_file, root)
    assert ds.features == S.caption_features() and ds["desc"] == ["a tone", "blue"]
    video = ds.with_format("numpy", dtype=None)[1]["video"]
    assert video.shape == (8, 32, 32, 3)
    assert abs(int(video[0, 0, 0, 2]) - 60) <= 3 and abs(int(video[-1, 0, 0, 2]) - 180) <= 3  # JPEG, 3 files


def test_missing_files_and_malformed_annotations(music_root, tmp_path):
    annotation_file, root = music_root
    with pytest.raises(FileNotFoundError, match="avqa-missing.json"):
        music_avqa.load_music_avqa(tmp_path / "avqa-missing.json", root)
    (root / "ast_audio" / "00000259.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"00000259.*ast_audio"):
        music_avqa.load_music_avqa(annotation_file, root)
    _write_video(tmp_path / "other", "00000259", 2)
    (tmp_path / "other" / "ast_audio" / "00000259.wav").rename(root / "ast_audio" / "00000259.wav")
    for frame in (root / "vivit_frames" / "00000823").iterdir():
        frame.unlink()
    with pytest.raises(FileNotFoundError, match=r"00000823.*vivit_frames"):
        music_avqa.load_music_avqa(annotation_file, root)
    broken = [dict(a) for a in ANNOTATIONS]
    del broken[1]["anser"]
    bad_file = tmp_path / "avqa-broken.json"
    bad_file.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"question_id=157.*'anser'"):
        music_avqa.load_music_avqa(bad_file, root)
    broken[1]["anser"], broken[2]["templ_values"] = "two", "first"
    bad_file.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"question_id=50.*templ_values"):
        music_avqa.load_music_avqa(bad_file, root)
    with pytest.raises(ValueError, match="num_frames"):
        music_avqa.load_music_avqa(annotation_file, root, num_frames=0)
