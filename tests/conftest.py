"""Test-wide settings: never touch the network, keep runs reproducible and light on 2 cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (restored after): small models and batches are fastest so, and more threads
    only spin-wait on a shared, loaded CPU. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def launch_two_processes():
    """`launch(recipe, output_dir, *train_args) -> training_log.json as a dict`: `accelerate launch` of
    `tokcom.training.train` with 2 CPU processes (DDP over gloo, one thread each); fails the test on a non-zero
    exit with the end of stderr."""
    import json
    import subprocess
    import sys

    def launch(recipe: dict, output_dir, *train_args: str) -> dict:
        output_dir = os.fspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        recipe_path = os.path.join(output_dir, "recipe.json")
        with open(recipe_path, "w") as handle:
            json.dump(recipe, handle)
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tokcom.training.train",
            "--recipe", recipe_path, "--output-dir", os.path.join(output_dir, "out"), *train_args,
        ]  # fmt: skip
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        with open(os.path.join(output_dir, "out", "training_log.json")) as handle:
            return json.load(handle)

    return launch
