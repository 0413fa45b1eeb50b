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


# ---------------------------------------------------------------------------------------------- batching parameters

BAD_LOADER_PARAMETERS = [({"batch_size": 0}, r"`batch_size` must be an integer in \[1, "),
                         ({"batch_size": -2}, r"`batch_size` must be an integer in \[1, "),
                         ({"batch_size": 2.5}, r"`batch_size` must be an integer in \[1, "),
                         ({"batch_size": True}, r"`batch_size` must be an integer in \[1, "),
                         ({"num_workers": -1}, r"`num_workers` must be an integer in \[0, "),
                         ({"num_workers": 1.5}, r"`num_workers` must be an integer in \[0, "),
                         ({"num_workers": True}, r"`num_workers` must be an integer in \[0, ")]  # fmt: skip


def test_batch_size_and_num_workers_are_checked_by_every_family(vqa):
    """The shared `TokenCommPipeline` refuses a `batch_size` that is not an integer >= 1 and a `num_workers` that is
    not an integer >= 0, per call (one input or a list) and at construction; a single input used to ignore them, a
    list to fail in torch's DataLoader."""
    from transformers import pipeline

    from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
    from tokcom.training.tokenization import build_word_tokenizer

    model = TaiChiForConditionalGeneration(TaiChiConfig.tiny()).eval()
    processor = TaiChiProcessor(build_word_tokenizer([*DEFAULT_INSTRUCTIONS.values(), "a good film"]))
    classify = pipeline("token-comm-text-classification", model=model, processor=processor)
    clip = {**CLIP, "question": "is the drum playing?"}
    for pipe, one in ((vqa, clip), (classify, "a good film")):
        for kwargs, message in BAD_LOADER_PARAMETERS:
            for inputs in (one, [one, one]):
                with pytest.raises(ValueError, match=message):
                    pipe(inputs, **kwargs)
    for kwargs, message in BAD_LOADER_PARAMETERS:
        with pytest.raises(ValueError, match=message):
            pipeline("token-comm-text-classification", model=model, processor=processor, **kwargs)
        with pytest.raises(ValueError, match=message):
            pipeline("token-comm-vqa", model=vqa.model, processor=vqa.processor, **kwargs)
    assert len(classify(["a good film"] * 3, batch_size=2, num_workers=0)) == 3


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


# ---------------------------------------------------------------------------------------------- unwritable output


def _read_only(monkeypatch):
    """Every write probe fails as on a read-only mount (tests run as root, where chmod does not stop writes)."""
    import errno
    import tempfile

    import tokcom.files

    def refuse(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(tokcom.files.tempfile, "NamedTemporaryFile", refuse)
    return tempfile


def test_unwritable_output_folders_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """`tokcom train --output-dir`, `tokcom evaluate --output` and `tokcom export --output` on a read-only folder
    ended in an OSError traceback (exit 1), train after building its data; now one line naming the folder, exit 2,
    before anything runs, and nothing written."""
    from tokcom.cli import main

    target = tmp_path / "ro"
    _read_only(monkeypatch)
    commands = {
        "train": ["train", "--recipe", "tokcom_avqa_tiny", "--output-dir", str(target / "run"), "--max-steps", "1"],
        "evaluate": ["evaluate", "--num-samples", "2", "--snr-db", "10", "--output", str(target / "e.json")],
        "export": ["export", "--output", str(target / "exported")],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"tokcom {name}: error: `"), err
        assert str(target) in err[0] and "read-only file system" in err[0], err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    monkeypatch.undo()
    (tmp_path / "a-file").write_text("x")  # a folder that cannot exist: its parent is a file
    assert main(["evaluate", "--num-samples", "2", "--output", str(tmp_path / "a-file" / "sub" / "e.json")]) == 2
    assert "`--output`" in capsys.readouterr().err


def test_a_full_disk_keeps_the_previous_checkpoint_and_file_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import errno
    import json

    import tokcom.training.engine as engine
    from tokcom.cli import main, write_json_atomic

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "state" / "step-00000002.partial"))

    class FullDisk:  # accelerate's save_state on a disk that fills up half-way through the optimizer file
        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, folder):
            Path(folder).mkdir(parents=True)
            (Path(folder) / "optimizer.bin").write_bytes(b"half")
            raise full

    state = tmp_path / "state"
    previous = state / "step-00000001"
    previous.mkdir(parents=True)
    (previous / "optimizer.bin").write_bytes(b"complete")
    with pytest.raises(OSError):
        engine.save_state_atomically(FullDisk(), state, 2, [], [])
    assert sorted(p.name for p in state.iterdir()) == ["step-00000001"]  # no partial left, the previous one intact
    assert (previous / "optimizer.bin").read_bytes() == b"complete"

    report = tmp_path / "report.json"
    write_json_atomic(report, {"accuracy": 0.5})
    monkeypatch.setattr(json, "dump", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError):
        write_json_atomic(report, {"accuracy": 0.9})
    monkeypatch.undo()
    assert json.loads(report.read_text()) == {"accuracy": 0.5} and [p.name for p in tmp_path.glob(".*")] == []

    def fills_the_disk(*args, **kwargs):
        raise full

    monkeypatch.setattr(engine, "train", fills_the_disk)
    assert main(["train", "--recipe", "tokcom_avqa_tiny", "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device" in err[0] and "step-00000002.partial" in err[0], err
