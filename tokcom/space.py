"""Build and run the Gradio Space: `tokcom space [--build-dir DIR] [--port 7860] [--no-launch]`.

A built Space folder holds `app.py`, `requirements.txt` and `README.md` (from `spaces/`), `media_io.py` (a copy of
`tokcom/modeling/media_io.py`, the media reader that the exported model also ships as remote code: the app reads
uploads with it, so it needs no `tokcom` install), the model exported with `tokcom export` (`model/`) and sample scenes from the synthetic world (`samples/`: frames as PNG, audio as 16-bit
`.wav`, questions with their answers). With a TaiChi or UniToCom checkpoint (given, or the embedded default when
installed) it also holds `taichi/` / `unitocom/` (`model/`, exported the same way, and `samples/`) for the app's
TaiChi and UniToCom tabs. It runs offline and is the folder to upload as a Hugging Face Space.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SPACE_FILES = ("app.py", "taichi_tab.py", "unitocom_tab.py", "requirements.txt", "README.md")
TAICHI_DEFAULT = "taichi-tiny"  # the embedded TaiChi default, used for the TaiChi tab when installed
UNITOCOM_DEFAULT = "unitocom-tiny"  # the embedded UniToCom default, used for the UniToCom tab when installed
MEDIA_IO_FILE = "media_io.py"  # copied from tokcom/modeling beside app.py (one source with the remote code)


def write_samples(folder: str | os.PathLike, num_scenes: int = 6, seed: int = 2024) -> list[dict]:
    """Synthetic scenes as files: `<folder>/<id>/frame_00.png ... audio.wav` and `<folder>/index.json`.

    >>> import tempfile
    >>> rows = write_samples(tempfile.mkdtemp(), num_scenes=2)
    >>> len(rows), sorted(rows[0])
    (2, ['caption', 'id', 'questions'])
    """
    from PIL import Image
    from scipy.io import wavfile

    from tokcom.modeling.media_io import float_to_pcm16
    from tokcom.training.data.synthetic_avqa import SyntheticAVQAConfig, describe_scene, generate_questions, generate_scenes

    if not 1 <= num_scenes <= 64:
        raise ValueError(f"`num_scenes` must be in [1, 64], got {num_scenes}.")
    folder = Path(folder)
    config = SyntheticAVQAConfig(questions_per_scene=6)
    scenes = generate_scenes(num_scenes, seed=seed, config=config)
    questions = generate_questions(scenes, seed=seed, config=config)
    rows = []
    for index in range(num_scenes):
        scene_id = f"scene-{index:02d}"
        scene_dir = folder / scene_id
        scene_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(scenes.video[index]):
            Image.fromarray(frame).save(scene_dir / f"frame_{t:02d}.png")
        wavfile.write(scene_dir / "audio.wav", scenes.sampling_rate, float_to_pcm16(scenes.audio[index]))
        asked = [
            {"question": q["question"], "answer": q["anser"], "type": json.loads(q["type"])}
            for q in questions
            if q["scene_index"] == index
        ]
        rows.append({"id": scene_id, "caption": describe_scene(*scenes.layout(index)), "questions": asked})
    (folder / "index.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def write_taichi_samples(folder: str | os.PathLike, num_scenes: int = 6, seed: int = 2024) -> dict:
    """Shapes-world images with questions, and sentences, for the TaiChi tab: `<folder>/<id>.png` and
    `<folder>/index.json` = `{"images": [{"id", "file", "caption", "questions": [{"question", "answer",
    "family"}]}], "sentences": [{"text", "label"}]}`.

    >>> import tempfile
    >>> index = write_taichi_samples(tempfile.mkdtemp(), num_scenes=2)
    >>> len(index["images"]), sorted(index["images"][0]), len(index["sentences"]) > 0
    (2, ['caption', 'file', 'id', 'questions'], True)
    """
    from PIL import Image

    from tokcom.training.taichi_corpus import SENTIMENT_ANSWERS, TaiChiCorpus

    if not 1 <= num_scenes <= 64:
        raise ValueError(f"`num_scenes` must be in [1, 64], got {num_scenes}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = TaiChiCorpus.build({"test_scenes": num_scenes, "questions_per_scene": 4, "sentiment_sentences": 48,
                                 "seed": seed}, "test")  # fmt: skip
    images = []
    for index, image in enumerate(corpus.images):
        name = f"image-{index:02d}"
        Image.fromarray(image).save(folder / f"{name}.png")
        asked = [{"question": q["question"], "answer": q["answer"], "family": q["family"]}
                 for q in corpus.questions if q["image_index"] == index]  # fmt: skip
        images.append({"id": name, "file": f"{name}.png", "caption": corpus.captions[index][0], "questions": asked})
    sentences = [{"text": text, "label": SENTIMENT_ANSWERS[label]}
                 for text, label in zip(corpus.sentences[:6], corpus.sentiment_labels[:6])]  # fmt: skip
    index = {"images": images, "sentences": sentences}
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index


def write_unitocom_samples(folder: str | os.PathLike, num_scenes: int = 6, seed: int = 2024, image_size: int = 32,
                           num_utterances: int = 3, max_speech_seconds: float = 3.5) -> dict:  # fmt: skip
    """Inputs for the UniToCom tab: shapes-world images of `image_size` pixels with questions (rendered at twice the
    size and block-averaged, as `UniToComCorpus.build` makes them), their captions as text-to-image prompts, and
    `num_utterances` espeak-ng utterances of at most `max_speech_seconds` as 16 kHz 16-bit WAVs with their
    transcripts: `<folder>/<id>.png`, `<folder>/<id>.wav` and `<folder>/index.json` = `{"images": [{"id", "file",
    "caption", "questions": [{"question", "answer", "family"}]}], "prompts": [str], "speech": [{"id", "file",
    "text"}]}`. Needs the `espeak-ng` program (speech is cached like the training data's).

    >>> import tempfile
    >>> index = write_unitocom_samples(tempfile.mkdtemp(), num_scenes=2, num_utterances=1)  # doctest: +SKIP
    >>> len(index["images"]), len(index["prompts"]) > 0, sorted(index["speech"][0])  # doctest: +SKIP
    (2, True, ['file', 'id', 'text'])
    """
    import numpy as np
    import soundfile
    from PIL import Image
    from scipy.io import wavfile

    from tokcom.modeling.media_io import float_to_pcm16
    from tokcom.training.data.spoken import SAMPLING_RATE, SpeechCache, speakers, spoken_sentences
    from tokcom.training.taichi_corpus import TaiChiCorpus

    if not 1 <= num_scenes <= 64:
        raise ValueError(f"`num_scenes` must be in [1, 64], got {num_scenes}.")
    if not 1 <= num_utterances <= 16:
        raise ValueError(f"`num_utterances` must be in [1, 16], got {num_utterances}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = TaiChiCorpus.build({"test_scenes": num_scenes, "questions_per_scene": 4, "max_objects": 3,
                                 "image_size": 2 * image_size, "sentiment_sentences": 2, "seed": seed}, "test")  # fmt: skip
    images = []
    for index, image in enumerate(corpus.images):
        name = f"image-{index:02d}"
        pooled = image.reshape(image_size, 2, image_size, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        Image.fromarray(pooled).save(folder / f"{name}.png")
        asked = [{"question": q["question"], "answer": q["answer"], "family": q["family"]}
                 for q in corpus.questions if q["image_index"] == index]  # fmt: skip
        images.append({"id": name, "file": f"{name}.png", "caption": corpus.captions[index][0], "questions": asked})
    prompts = list(dict.fromkeys(row["caption"] for row in images))

    # 1. candidate sentences by several speakers; 2. keep the first that fit the length bound
    cache, speech = SpeechCache(), []
    voices = speakers(num_utterances, seed)
    for text in spoken_sentences(8 * num_utterances, seed):
        wave, rate = soundfile.read(cache.flac(text, voices[len(speech)]), dtype="float32")
        if len(wave) <= max_speech_seconds * rate:
            name = f"speech-{len(speech):02d}"
            wavfile.write(folder / f"{name}.wav", SAMPLING_RATE, float_to_pcm16(wave))
            speech.append({"id": name, "file": f"{name}.wav", "text": text})
            if len(speech) == num_utterances:
                break
    if len(speech) < num_utterances:
        raise ValueError(f"Only {len(speech)} of {num_utterances} utterances fit {max_speech_seconds} s; raise "
                         "`max_speech_seconds`.")  # fmt: skip
    index = {"images": images, "prompts": prompts, "speech": speech}
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index


def embedded_checkpoint(name: str) -> str | None:
    """The folder of the embedded checkpoint `name` (in `tokcom/checkpoints`) when installed, else None."""
    from tokcom.defaults import default_model_path

    try:
        return str(default_model_path(name))
    except FileNotFoundError:
        return None


def build_space(output_dir: str | os.PathLike, model: str | None = None, num_scenes: int = 6, overwrite: bool = False,
                taichi_model: str | None = None, unitocom_model: str | None = None) -> Path:  # fmt: skip
    """Write a runnable Space folder (app, requirements, card, exported model, samples) into `output_dir`.

    The folder is assembled beside `output_dir` and moved into place at the end, so a failure leaves nothing
    half-written. `model`: a checkpoint folder or repo id (default: the embedded default). `taichi_model`: a TaiChi
    checkpoint for the TaiChi tab (default: the embedded `taichi-tiny` when installed; without one, no tab).
    `unitocom_model`: a UniToCom checkpoint for the UniToCom tab (default: the embedded `unitocom-tiny` when
    installed; without one, no tab). Each tab's model is exported with `tokcom.hub.export_model` (its code ships
    with it) into `<tab>/model`, its sample inputs into `<tab>/samples`.
    """
    from transformers import AutoConfig

    from tokcom.files import staged_directory
    from tokcom.hub import resolve_model, export_model
    from tokcom.modeling import media_io
    from tokcom.registry import family_for_model_type, import_object

    # the model's family (registry) writes the sample inputs its Space tab offers
    family = family_for_model_type(AutoConfig.from_pretrained(resolve_model(model)).model_type)
    if family.name in ("taichi", "unitocom"):
        raise ValueError(f"The Space's first tab is TokCom AVQA: give a {family.name} checkpoint as "
                         f"`{family.name}_model` (`tokcom space --{family.name}-model PATH`), not as `model`.")
    if family.space_samples is None:
        raise ValueError(f"The {family.name!r} family has no Space samples yet (`space_samples` in tokcom/registry.py).")
    write_family_samples = import_object(family.space_samples)

    source = Path(__file__).resolve().parent.parent / "spaces"
    if not (source / "app.py").is_file():
        import tokcom.spaces

        source = Path(tokcom.spaces.__file__).parent
    with staged_directory(output_dir, overwrite, "--build-dir") as staging:
        for name in SPACE_FILES:
            shutil.copy2(source / name, staging / name)
        shutil.copy2(Path(media_io.__file__), staging / MEDIA_IO_FILE)
        export_model(model, staging / "model")
        write_family_samples(staging / "samples", num_scenes=num_scenes)
        tabs = {"taichi": (taichi_model, TAICHI_DEFAULT, write_taichi_samples),
                "unitocom": (unitocom_model, UNITOCOM_DEFAULT, write_unitocom_samples)}  # fmt: skip
        for tab, (tab_model, default, write_tab_samples) in tabs.items():
            tab_model = tab_model if tab_model is not None else embedded_checkpoint(default)
            if tab_model is not None:
                export_model(tab_model, staging / tab / "model")
                write_tab_samples(staging / tab / "samples", num_scenes=num_scenes)
    return Path(output_dir)


def launch_space(folder: str | os.PathLike, port: int = 7860, host: str = "127.0.0.1") -> int:
    """Serve a built Space folder with its own `app.py` (blocks until stopped); returns the exit code."""
    folder = Path(folder)
    if not (folder / "app.py").is_file():
        raise FileNotFoundError(f"{folder} has no app.py; build it with `tokcom space --build-dir {folder}`.")
    if not 1 <= port <= 65535:
        raise ValueError(f"`--port` must be in [1, 65535], got {port}.")
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": host, "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}  # fmt: skip
    print(f"serving {folder} at http://{host}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
    return subprocess.call([sys.executable, str(folder / "app.py")], cwd=folder, env=env)


__all__ = ["MEDIA_IO_FILE", "SPACE_FILES", "build_space", "embedded_checkpoint", "launch_space", "write_samples",
           "write_taichi_samples", "write_unitocom_samples"]
