"""Issue 17, the remainder: what a user sends ends in a one-line message, never a traceback, raw exception text or a
silent wrong answer (the Space's handlers, questions, garbage model files, unwritable output folders)."""

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

import tokcom  # noqa: F401  registers the task

CLIP = {"video": np.zeros((8, 32, 32, 3), np.uint8), "audio": {"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}


@pytest.fixture(scope="module")
def vqa():
    from transformers import pipeline

    return pipeline("token-comm-vqa", device="cpu")


# ---------------------------------------------------------------------------------------------- the Space


def test_space_handlers_show_one_line_messages_and_log_the_rest(caplog):
    """`show_error=True` showed users raw exception text; now our input checks become one-line `gr.Error`s (server
    paths cut to the file's name) and anything else a generic message, with the traceback in the server's log."""
    import gradio as gr

    from tokcom.spaces import app

    assert "show_error=True" not in Path(app.__file__).read_text()

    def refused():
        raise ValueError("`audio` file /tmp/gradio/3f9a/upload.wav could not be read as WAV: junk\nsecond line")

    with pytest.raises(gr.Error) as info:
        app.friendly(refused)()
    assert info.value.message == "`audio` file upload.wav could not be read as WAV: junk"

    def crashed():
        raise RuntimeError("internal detail /srv/secret/state")

    with caplog.at_level(logging.ERROR, logger="tokcom.space"), pytest.raises(gr.Error) as info:
        app.friendly(crashed)()
    assert info.value.message == app.GENERIC_ERROR and "internal detail" not in info.value.message
    assert "internal detail" in caplog.text and "Traceback" in caplog.text  # the server keeps the whole story

    def asked():
        raise gr.Error("Type a question of 1 to 200 characters.")

    with pytest.raises(gr.Error, match="Type a question"):
        app.friendly(asked)()


def test_the_space_answer_handler_is_wrapped(tmp_path, monkeypatch, caplog):
    import gradio as gr

    from tokcom.defaults import default_model_path
    from tokcom.space import write_samples
    from tokcom.spaces import app

    rows = write_samples(tmp_path, num_scenes=1)
    demo = app.build_demo(str(default_model_path()), tmp_path)
    answer = next(fn for fn in demo.fns.values() if fn.api_name == "answer").fn
    scene, question = tmp_path / rows[0]["id"], rows[0]["questions"][0]["question"]
    settings = ("AWGN", 30.0, "by hand", 32, 16, 3.0, 23.0, 0.3, 0.4, 0)

    def broken(out):
        raise KeyError("transmission")

    monkeypatch.setattr(app, "report_markdown", broken)
    with caplog.at_level(logging.ERROR, logger="tokcom.space"), pytest.raises(gr.Error) as info:
        answer(rows[0]["id"], None, str(scene / "audio.wav"), question, *settings)
    assert info.value.message == app.GENERIC_ERROR and "KeyError" in caplog.text
    monkeypatch.undo()
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(gr.Error, match="not a readable .wav"):
        answer(rows[0]["id"], None, str(tmp_path / "broken.wav"), question, *settings)


# ---------------------------------------------------------------------------------------------- questions


def test_questions_are_bounded_by_the_models_context_and_unknown_words_warn(vqa):
    from tokcom.pipelines.token_comm_vqa import UnknownWordsWarning, max_question_tokens

    limit = max_question_tokens(vqa.model.config)
    assert limit == 512 - 64 - 32 - 4  # LLM positions less the visual, audio and answer tokens
    with pytest.raises(ValueError, match="`question` has 10,000 characters; at most 1000"):
        vqa({**CLIP, "question": "is the drum playing " * 500})  # used to answer '' silently
    with pytest.raises(ValueError, match=rf"`question` gives 450 tokens; at most {limit} fit"):
        vqa({**CLIP, "question": "? " * 450})  # under 1,000 characters, over the context
    with pytest.warns(UnknownWordsWarning, match=r"4 of 5 words .*'cuántos'.*\(80%\)"):
        out = vqa({**CLIP, "question": "¿cuántos instrumentos suenan?"}, snr_db=10.0, seed=0)
    assert out["answer"]
    with pytest.warns(UnknownWordsWarning, match="1 of 1 words"):
        vqa({**CLIP, "question": "多少个乐器在演奏"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)
        vqa({**CLIP, "question": "How many instruments in the video are playing?"})


# ---------------------------------------------------------------------------------------------- garbage model files

GARBAGE = [
    ("config.json", b"{not json"),
    ("config.json", b"[1, 2]"),
    ("config.json", b'{"model_type": "tokcom", "max_visual_tokens": "many"}'),
    ("processor_config.json", b"\x00\xff"),
    ("processor_config.json", b"[1, 2]"),
    ("processor_config.json", b'{"feature_extractor": {"num_mel_bins": "x"}}'),
    ("processor_config.json", b'{"model_type": "tokcom"}'),  # parses, but no extractor settings: wrong features
    ("tokenizer.json", b"{not json"),
    ("tokenizer.json", b"[1, 2]"),
    ("tokenizer.json", b'{"model": 1}'),
    ("tokenizer_config.json", b"[1, 2]"),
]


@pytest.fixture(scope="module")
def damaged_folders(tmp_path_factory):
    import shutil

    from tokcom.defaults import default_model_path

    folders = []
    for index, (name, content) in enumerate(GARBAGE):
        folder = tmp_path_factory.mktemp(f"garbage-{index}")
        shutil.rmtree(folder)
        shutil.copytree(default_model_path(), folder)
        (folder / name).write_bytes(content)
        folders.append((name, folder))
    return folders


def test_garbage_model_files_end_in_one_line_naming_the_file(damaged_folders, tmp_path, capsys):
    """A garbage config.json, processor_config.json or tokenizer.json used to end in AttributeError, TypeError,
    KeyError or an OSError from deep inside a loader (and `tokcom export` in exit code 1 with a traceback); now the
    pipeline raises one line naming the file and what is wrong, and `tokcom export`/`tokcom evaluate` exit 2 with
    that line and nothing written."""
    from transformers import pipeline

    from tokcom.cli import main

    for name, folder in damaged_folders:
        with pytest.raises((ValueError, OSError)) as info:
            pipeline("token-comm-vqa", model=str(folder))
        message = str(info.value)
        assert type(info.value) in (ValueError, OSError) and len(message.splitlines()) == 1, (name, message)
        assert name in message or name == "config.json" and "`max_visual_tokens`" in message, (name, message)
        capsys.readouterr()
        out = tmp_path / f"export-{folder.name}"
        assert main(["export", "--model", str(folder), "--output", str(out)]) == 2
        assert main(["evaluate", "--model", str(folder), "--num-samples", "2", "--output", str(tmp_path / "e.json")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]  # bars
        assert len(errors) == 2 and all(name in line for line in errors), (name, errors)
        assert errors[0].startswith("tokcom export: error: ") and errors[1].startswith("tokcom evaluate: error: ")
        assert not out.exists() and not (tmp_path / "e.json").exists()
