"""Build and run the Gradio Space: `tokcom space [--build-dir DIR] [--port 7860] [--no-launch]`.

A built Space folder holds `app.py`, `requirements.txt` and `README.md` (from `spaces/`), `media_io.py` (a copy of
`tokcom/modeling/media_io.py`, the media reader that the exported model also ships as remote code: the app reads
uploads with it, so it needs no `tokcom` install), the model exported with `tokcom export` (`model/`) and sample scenes from the synthetic world (`samples/`: frames as PNG, audio as 16-bit
`.wav`, questions with their answers). It runs offline and is the folder to upload as a Hugging Face Space.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SPACE_FILES = ("app.py", "taichi_tab.py", "requirements.txt", "README.md")
TAICHI_DEFAULT = "taichi-tiny"  # the embedded TaiChi default, used for the TaiChi tab when installed
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


def build_space(output_dir: str | os.PathLike, model: str | None = None, num_scenes: int = 6, overwrite: bool = False,
                taichi_model: str | None = None) -> Path:  # fmt: skip
    """Write a runnable Space folder (app, requirements, card, exported model, samples) into `output_dir`.

    The folder is assembled beside `output_dir` and moved into place at the end, so a failure leaves nothing
    half-written. `model`: a checkpoint folder or repo id (default: the embedded default). `taichi_model`: a TaiChi
    checkpoint for the TaiChi tab (default: the embedded `taichi-tiny` when installed; without one, no tab).
    """
    from transformers import AutoConfig

    from tokcom.files import staged_directory
    from tokcom.hub import resolve_model, export_model
    from tokcom.modeling import media_io
    from tokcom.registry import family_for_model_type, import_object

    # the model's family (registry) writes the sample inputs its Space tab offers
    family = family_for_model_type(AutoConfig.from_pretrained(resolve_model(model)).model_type)
    if family.name == "taichi":
        raise ValueError("The Space's first tab is TokCom AVQA: give a TaiChi checkpoint as `taichi_model` "
                         "(`tokcom space --taichi-model PATH`), not as `model`.")
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
        if taichi_model is None:
            from tokcom.defaults import CHECKPOINTS_DIR

            embedded = CHECKPOINTS_DIR / TAICHI_DEFAULT
            taichi_model = str(embedded) if (embedded / "config.json").is_file() else None
        if taichi_model is not None:
            export_model(taichi_model, staging / "taichi" / "model")
            write_taichi_samples(staging / "taichi" / "samples", num_scenes=num_scenes)
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


__all__ = ["MEDIA_IO_FILE", "SPACE_FILES", "build_space", "launch_space", "write_samples", "write_taichi_samples"]
