"""tokcom.modeling.media_io: the one reader for audio, frame folders and images."""

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from tokcom.modeling import media_io


@pytest.mark.parametrize(
    "samples, expected",
    [
        (np.array([-32768, -16384, 0, 16384, 32767], np.int16), [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]),
        (np.array([-(2**31), 0, 2**30], np.int32), [-1.0, 0.0, 0.5]),
        (np.array([0, 64, 128, 192, 255], np.uint8), [-1.0, -0.5, 0.0, 0.5, 127 / 128]),
        (np.array([-1.0, 0.25, 1.0], np.float64), [-1.0, 0.25, 1.0]),
        (np.array([0.5], np.float32), [0.5]),
    ],
    ids=["int16", "int32", "uint8", "float64", "float32"],
)
def test_one_scaling_rule(samples, expected):
    out = media_io.pcm_to_float(samples)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)


def test_pcm16_round_trip_and_non_numeric_data():
    wave = np.linspace(-1.0, 1.0 - 2**-15, 101)
    np.testing.assert_allclose(media_io.pcm_to_float(media_io.float_to_pcm16(wave)), wave, atol=2**-16)
    assert media_io.float_to_pcm16([2.0, -2.0]).tolist() == [32767, -32768]  # clipped
    with pytest.raises(ValueError, match="`clip` must hold numbers"):
        media_io.pcm_to_float(np.array(["a"]), name="clip")


@pytest.mark.parametrize("dtype, full_scale", [(np.int16, 16384), (np.int32, 2**30), (np.uint8, 192)])
def test_wav_files_scale_mix_down_and_resample(tmp_path, dtype, full_scale):
    left = np.full(4410, full_scale, dtype)
    right = np.full(4410, 128 if dtype == np.uint8 else 0, dtype)  # silence
    path = tmp_path / "stereo.wav"
    wavfile.write(path, 44100, np.stack([left, right], axis=1))
    audio = media_io.read_wav(path)
    assert audio.sampling_rate == 44100 and audio.waveform.shape == (4410,) and audio.duration_s == pytest.approx(0.1)
    np.testing.assert_allclose(audio.waveform, 0.25, atol=1e-6)  # (0.5 + 0) / 2
    both = media_io.read_wav(path, mono=False)
    assert both.waveform.shape == (4410, 2)
    at_16k = media_io.read_wav(path, sampling_rate=16000)
    assert at_16k.sampling_rate == 16000 and at_16k.waveform.shape == (1600,) and at_16k.waveform.dtype == np.float32
    assert abs(float(at_16k.waveform[800]) - 0.25) < 1e-3  # the middle, away from the filter's edges


@pytest.mark.parametrize("rate", [44100, 48000, 8000, 22050])
def test_resampling_to_16k_keeps_a_tone(rate):
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = media_io.resample(tone, rate, 16000)
    assert out.shape == (16000,) and out.dtype == np.float32
    expected = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 0.02
    assert media_io.resample(tone, rate, rate) is not None
    with pytest.raises(ValueError, match="sampling_rate"):
        media_io.resample(tone, 0, 16000)
    with pytest.raises(ValueError, match="float"):
        media_io.resample(np.zeros(10, np.int16), rate, 16000)


def test_load_audio_from_arrays_dicts_and_paths(tmp_path):
    stereo = np.stack([np.full(48000, 16384, np.int16), np.full(48000, -16384, np.int16)], axis=1)
    mixed = media_io.load_audio(stereo, 48000)
    assert mixed.sampling_rate == 48000 and np.abs(mixed.waveform).max() == 0.0  # +0.5 and -0.5 cancel
    out = media_io.load_audio({"array": stereo[:, 0], "sampling_rate": 48000}, target_rate=16000)
    assert out.waveform.shape == (16000,) and out.sampling_rate == 16000 and out.duration_s == 1.0
    wavfile.write(tmp_path / "a.wav", 48000, stereo)
    from_path = media_io.load_audio({"path": str(tmp_path / "a.wav")}, target_rate=16000)
    assert from_path.waveform.shape == (16000,) and from_path.sampling_rate == 16000
    with pytest.raises(ValueError, match="sampling_rate"):
        media_io.load_audio(stereo)
    with pytest.raises(ValueError, match="sampling_rate"):
        media_io.load_audio(tmp_path / "a.wav", 16000)
    with pytest.raises(ValueError, match="disagree"):
        media_io.load_audio({"array": stereo, "sampling_rate": 48000}, 16000)
    with pytest.raises(ValueError, match="rate"):
        media_io.load_audio({"array": stereo, "rate": 48000})
    with pytest.raises(ValueError, match="`speech` is empty"):
        media_io.load_audio(np.zeros(0, np.float32), 16000, name="speech")
    with pytest.raises(ValueError, match="NaN"):
        media_io.load_audio(np.full(10, np.nan), 16000)
    with pytest.raises(ValueError, match="shape"):
        media_io.load_audio(np.zeros((2, 2, 2), np.float32), 16000)


def test_wav_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"`speech` path must be a \.wav"):
        media_io.read_wav(tmp_path / "clip.mp3", name="speech")
    with pytest.raises(FileNotFoundError, match="`speech` file not found"):
        media_io.read_wav(tmp_path / "missing.wav", name="speech")
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="`audio` file .*broken.wav could not be read as WAV"):
        media_io.read_wav(tmp_path / "broken.wav")
    wavfile.write(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="empty"):
        media_io.read_wav(tmp_path / "empty.wav")
    wavfile.write(tmp_path / "long.wav", 8000, np.full(80000, 8192, np.int16))
    cut = media_io.read_wav(tmp_path / "long.wav", sampling_rate=16000, max_duration_s=0.5)
    assert cut.waveform.shape == (8000,) and cut.duration_s == 10.0
    with pytest.raises(ValueError, match="max_duration_s"):
        media_io.read_wav(tmp_path / "long.wav", max_duration_s=0)


def _frame(value, size=(24, 20)):
    return Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8))


def test_frame_folders_are_read_in_natural_order(tmp_path):
    for index in (10, 2, 1):  # frame_10 comes after frame_2, not between frame_1 and frame_2
        _frame(index).save(tmp_path / f"frame_{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = media_io.load_frames(tmp_path)
    assert frames.shape == (3, 20, 24, 3) and frames.dtype == np.uint8
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]
    sampled = media_io.read_frame_folder(tmp_path, num_frames=2, size=8)
    assert sampled.shape == (2, 8, 8, 3) and sampled[:, 0, 0, 0].tolist() == [1, 10]
    assert [p.name for p in media_io.sort_frame_paths(["b.png", "a.png", "x_3.jpg"])] == ["a.png", "b.png", "x_3.jpg"]


def test_frame_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="`video` folder not found"):
        media_io.load_frames(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="`clip` folder .* holds no frame images"):
        media_io.load_frames(tmp_path / "empty", name="clip")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _frame(0).save(mixed / "0.png")
    _frame(0, size=(8, 8)).save(mixed / "1.png")
    with pytest.raises(ValueError, match="same size"):
        media_io.load_frames(mixed)
    assert media_io.read_frame_folder(mixed, size=(6, 4)).shape == (2, 4, 6, 3)  # resizing makes them match
    (mixed / "2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="not a readable image"):
        media_io.load_frames(mixed, size=8)
    with pytest.raises(ValueError, match="num_frames"):
        media_io.sample_frames([1, 2], 0)


def test_frame_arrays_and_single_images(tmp_path):
    frames = np.zeros((4, 6, 8, 3), np.uint8)
    assert media_io.load_frames(frames) is frames
    assert media_io.load_frames(frames, num_frames=2, size=4).shape == (2, 4, 4, 3)
    for bad in (frames.astype(np.float32), frames[..., 0], frames[:0]):
        with pytest.raises(ValueError, match="`video`"):
            media_io.load_frames(bad)
    _frame(7, size=(10, 5)).convert("L").save(tmp_path / "grey.png")
    image = media_io.load_image(tmp_path / "grey.png")
    assert image.shape == (5, 10, 3) and image.dtype == np.uint8 and image[0, 0].tolist() == [7, 7, 7]
    assert media_io.load_image(_frame(3), size=4).shape == (4, 4, 3)
    assert media_io.load_image(frames[0], size=(2, 3)).shape == (3, 2, 3)
    with pytest.raises(FileNotFoundError, match="`photo` file not found"):
        media_io.load_image(tmp_path / "none.png", name="photo")
    with pytest.raises(ValueError, match="`photo` must be a uint8 image"):
        media_io.load_image(np.zeros((4, 4)), name="photo")
    with pytest.raises(ValueError, match="size"):
        media_io.load_image(frames[0], size=0)


def test_media_io_imports_only_numpy_scipy_and_the_standard_library():
    """It ships as Hub remote code and is imported by the Space without tokcom: no torch, no tokcom, PIL only
    inside `try` (transformers' remote-code check skips imports in `try` blocks)."""
    tree = ast.parse(Path(media_io.__file__).read_text(encoding="utf-8"))
    in_try = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try) for node in ast.walk(t)}
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "media_io must not need sibling modules (the Space copies it alone)"
            names = [node.module]
        else:
            continue
        roots |= {name.split(".")[0] for name in names if id(node) not in in_try}
    assert roots <= {"__future__", "math", "numbers", "os", "re", "pathlib", "typing", "numpy", "scipy"}
