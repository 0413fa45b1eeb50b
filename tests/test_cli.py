"""The `tokcom` command: allocate, demo, evaluate, train; clear errors and no half-written files."""

import json
import os
import subprocess
import sys

import pytest

from tokcom.cli import main
from tokcom.pipelines.allocation import allocate, default_network


def test_allocate_writes_the_same_result_as_the_api(tmp_path, capsys):
    problem = tmp_path / "net.json"
    problem.write_text(json.dumps(default_network()))
    output = tmp_path / "out" / "alloc.json"
    assert main(["allocate", str(problem), "--method", "alternating", "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    assert written["method"] == "alternating"
    assert [d["tokens"] for d in written["devices"]] == [d["tokens"] for d in allocate(default_network(), "alternating")["devices"]]
    assert json.loads(capsys.readouterr().out)["cost"] == pytest.approx(written["cost"])


@pytest.mark.parametrize(
    "payload, args, message",
    [
        (None, [], "not found"),
        ("{not json", [], "not valid JSON"),
        ({**default_network(), "weight": 1.5}, [], "weight"),
        (default_network(), ["--method", "greedy"], "--method"),
    ],
)
def test_allocate_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, payload, args, message):
    problem = tmp_path / "net.json"
    if payload is not None:
        problem.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    output = tmp_path / "alloc.json"
    assert main(["allocate", str(problem), *args, "--output", str(output)]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists() and not list(tmp_path.glob(".alloc.json*"))


def test_demo_runs_offline_and_writes_its_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tokcom.cli", "demo", "--output-dir", str(tmp_path), "--num-scenes", "2"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "demo.json").read_text())
    assert len(report["questions"]) >= 2 and report["allocation"]["devices"]
    assert (tmp_path / "received_frames.png").stat().st_size > 1000
    awgn = [m for m in report["channel"] if m["channel"] == "awgn"]
    assert all(abs(m["measured_snr_db"] - m["snr_db"]) < 0.5 for m in awgn)
    if report["vqa"] is not None:  # the embedded default is installed
        assert (tmp_path / "accuracy_vs_snr.png").exists()
        assert len(report["vqa"]["answers"]) == len(report["questions"])
        assert "accuracy" in report["vqa"]["accuracy_vs_snr"]["results"][0]


def test_demo_and_evaluate_reject_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--num-scenes", "0", "--output-dir", str(tmp_path)]) == 2
    assert "num_scenes" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "nothing"), "--snr-db", "0"]) == 2
    assert "not a checkpoint folder (no config.json there)" in capsys.readouterr().err  # tokcom.hub.resolve_model
    assert main(["train", "--recipe", str(tmp_path / "missing.json"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "Recipe not found" in capsys.readouterr().err
