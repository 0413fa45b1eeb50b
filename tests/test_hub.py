"""`tokcom export` / `tokcom publish`: a complete Hub repo that loads with trust_remote_code where tokcom is absent."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from huggingface_hub import ModelCard
from isolated_env import build_isolated_env, installed_version, requirement_closure

from tokcom.cli import main
from tokcom.defaults import default_model_path
from tokcom.hub import (
    AUTO_MAP,
    REMOTE_CODE_FILES,
    REQUIRED_FILES,
    PublishError,
    export_model,
    publish_folder,
    remote_code_files,
    remote_code_requirements,
    remote_code_source,
    validate_model_card,
)
from tokcom.registry import FAMILIES

CLIP = {
    "video": np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
    "audio": {"array": np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32), "sampling_rate": 16000},
    "question": "How many instruments are sounding in the video?",
}
NETWORK = {"bandwidth_hz": 3e6, "power_dbm": 23.0, "weight": 0.6,
           "devices": [{"name": "visual", "distance_km": 0.35}, {"name": "audio", "distance_km": 0.45}]}  # fmt: skip


def isolated_python(tmp_path, packages: list[str], transformers_release: str = "installed"):
    """A venv under `tmp_path` holding only `packages` (and their requirements); with `"newest"`, transformers is the
    newest PyPI release instead of this environment's (skipped when PyPI is unreachable, unless CI sets
    TOKCOM_REQUIRE_NEWEST=1)."""
    newest = ("transformers",) if transformers_release == "newest" else ()
    try:
        return build_isolated_env(tmp_path / "venv", packages, newest)
    except RuntimeError as error:  # no PyPI here; CI has it and sets TOKCOM_REQUIRE_NEWEST=1
        if os.environ.get("TOKCOM_REQUIRE_NEWEST") == "1":
            raise
        pytest.skip(str(error))


def run_cards_snippet(python, folder, repo_id: str, tmp_path) -> str:
    """Run the Python usage snippet of `folder`'s card (loading `folder` where it says `repo_id`) with `python`,
    offline, then check there that `tokcom` is not importable and that `AutoModel` loads a remote-code class;
    returns its stdout."""
    text = ModelCard.load(folder / "README.md").text
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1).replace(repo_id, str(folder))
    check = ("\nimport importlib.util\nassert importlib.util.find_spec('tokcom') is None\n"
             "from transformers import AutoModel\nm = AutoModel.from_pretrained(" + repr(str(folder))
             + ", trust_remote_code=True)\nassert type(m).__module__.startswith('transformers_modules'), type(m)\n"
             "print('AUTOMODEL', type(m).__name__)\n")  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run([str(python), "-c", snippet + check], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_model(None, tmp_path_factory.mktemp("hub") / "tokcom-avqa-tiny", repo_id="tokcom/tokcom-avqa-tiny")


def test_export_writes_a_complete_hub_repo(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json", "processor_config.json"} <= names
    assert set(REMOTE_CODE_FILES) <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert config["custom_pipelines"]["token-comm-vqa"]["impl"] == "token_comm_vqa.TokenCommVQAPipeline"
    for name in REMOTE_CODE_FILES:  # the copies import each other relatively, never the tokcom package
        source = (exported / name).read_text()
        assert not re.search(r"^\s*(from|import)\s+tokcom\b", source, re.MULTILINE), name
    assert "from .channel import" in (exported / "modeling_tokcom.py").read_text()


def test_exported_card_metadata_and_results_come_from_the_evaluation(exported):
    card = ModelCard.load(exported / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "visual-question-answering"
    assert data.license == "apache-2.0" and "token-communication" in data.tags and data.datasets
    evaluation = json.loads((default_model_path() / "evaluation.json").read_text())["evaluation"]
    expected = [round(r["accuracy"], 4) for channel in evaluation.values() for r in channel["results"]]
    assert [r.metric_value for r in data.eval_results] == expected
    assert 'pipeline("token-comm-vqa", model="tokcom/tokcom-avqa-tiny", trust_remote_code=True)' in card.text


ISOLATED_SCRIPT = r"""
import importlib.util, json, sys
import numpy as np
for name in ("tokcom", "PIL", "gradio", "datasets", "diffusers"):
    assert importlib.util.find_spec(name) is None, f"{name} must not be importable here"
from transformers import AutoModel, pipeline
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
assert type(model).__name__ == "TokComForAVQA" and type(model).__module__.startswith("transformers_modules"), type(model)
vqa = pipeline("token-comm-vqa", model=folder, trust_remote_code=True)
media = np.load(sys.argv[2])
clip = {"video": media["video"], "audio": {"array": media["audio"], "sampling_rate": 16000}, "question": sys.argv[4]}
network = json.loads(sys.argv[3])
by_snr = vqa(clip, snr_db=10.0, seed=0)
by_network = vqa(clip, network=network, seed=0)
print("RESULT " + json.dumps({"snr": by_snr, "network": by_network}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("transformers_release", ["installed", "newest"])
def test_exported_repo_loads_and_answers_without_tokcom_installed(exported, tmp_path, transformers_release):
    """A fresh venv with only torch, transformers, peft, numpy, scipy (and their requirements): no tokcom, no PIL.
    Once with this environment's transformers, once with the newest release on PyPI (the model decodes through
    transformers' cache API, which changes between releases)."""
    import transformers
    from transformers import pipeline

    python = isolated_python(tmp_path, ["torch", "transformers", "peft", "numpy", "scipy"], transformers_release)
    version = installed_version(python, "transformers")
    if transformers_release == "newest":
        print(f"isolated env runs transformers {version} (this environment: {transformers.__version__})")
    else:
        assert version == transformers.__version__
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TRANSFORMERS_VERBOSITY="error")
    np.savez(tmp_path / "clip.npz", video=CLIP["video"], audio=CLIP["audio"]["array"])
    command = [str(python), "-c", ISOLATED_SCRIPT, str(exported), str(tmp_path / "clip.npz"), json.dumps(NETWORK), CLIP["question"]]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    remote = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])

    local = pipeline("token-comm-vqa", model=str(default_model_path()))  # the same weights through the tokcom package
    expected = local(CLIP, snr_db=10.0, seed=0)
    assert remote["snr"]["answer"] == expected["answer"]
    assert remote["snr"]["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert remote["snr"]["transmission"] == expected["transmission"]
    visual = remote["network"]["transmission"]["visual"]
    assert remote["network"]["transmission"]["method"] == "proposed" and visual["bandwidth_hz"] > 0 and visual["latency_s"] > 0


@pytest.mark.slow
def test_the_cards_usage_snippet_runs_in_the_isolated_env(exported, tmp_path):
    python = isolated_python(tmp_path, ["torch", "transformers", "peft", "numpy", "scipy"])
    stdout = run_cards_snippet(python, exported, "tokcom/tokcom-avqa-tiny", tmp_path)
    assert "'answer':" in stdout and "'bandwidth_hz':" in stdout


def test_export_refuses_an_existing_folder_and_leaves_no_partial_output(exported, tmp_path):
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(None, exported)
    with pytest.raises(FileNotFoundError, match="--results"):
        export_model(None, tmp_path / "out", results=tmp_path / "missing.json")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a staging folder is left behind
    (tmp_path / "not-a-model").mkdir()
    assert main(["export", "--model", str(tmp_path / "not-a-model"), "--output", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_import_rewriting_rejects_code_that_would_need_the_package():
    assert remote_code_source("    from tokcom.pipelines.allocation import allocate\n", "f.py") == "    from .allocation import allocate\n"
    with pytest.raises(ValueError, match="not exported"):
        remote_code_source("from tokcom.modeling.secret import x\n", "f.py")
    with pytest.raises(ValueError, match="self-contained"):
        remote_code_source("import tokcom\n", "f.py")


def test_publish_dry_run_lists_files_and_validates_the_card(exported, capsys):
    report = publish_folder(exported, "someone/tokcom-avqa-tiny", dry_run=True)
    assert {f["path"] for f in report["files"]} == {p.name for p in exported.iterdir()}
    assert report["total_bytes"] == sum(p.stat().st_size for p in exported.iterdir()) and report["url"] is None
    assert main(["publish", str(exported), "--repo-id", "someone/tokcom-avqa-tiny", "--dry-run"]) == 0
    assert "would upload" in capsys.readouterr().out


def test_publish_without_network_fails_with_a_message_and_never_prints_the_token(exported):
    secret = "hf_doNotPrintThisToken123"
    for offline in ("1", "0"):  # offline mode, then a real connection attempt that cannot reach the Hub here
        env = {**os.environ, "HF_TOKEN": secret, "HF_HUB_OFFLINE": offline, "HF_HUB_ETAG_TIMEOUT": "3"}
        command = [sys.executable, "-m", "tokcom.cli", "publish", str(exported), "--repo-id", "someone/tiny"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "tokcom publish: error:" in result.stderr and "Traceback" not in result.stderr
        assert secret not in result.stdout + result.stderr


def test_publish_rejects_bad_input(exported, tmp_path):
    with pytest.raises(PublishError, match="OWNER/NAME"):
        publish_folder(exported, "no-slash", dry_run=True)
    with pytest.raises(PublishError, match="not a directory"):
        publish_folder(tmp_path / "missing", "a/b", dry_run=True)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text("{}")
    with pytest.raises(PublishError, match="missing"):
        publish_folder(incomplete, "a/b", dry_run=True)
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(exported, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(PublishError, match="safetensors only"):
        publish_folder(pickled, "a/b", dry_run=True)
    (pickled / "pytorch_model.bin").unlink()
    (pickled / "README.md").write_text("no front matter\n")
    with pytest.raises(PublishError, match="metadata|front matter"):
        publish_folder(pickled, "a/b", dry_run=True)


@pytest.fixture(scope="module")
def exported_taichi(tmp_path_factory):
    import torch

    from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
    from tokcom.training.tokenization import build_word_tokenizer

    source = tmp_path_factory.mktemp("taichi_source")
    torch.manual_seed(0)
    TaiChiForConditionalGeneration(TaiChiConfig.tiny()).save_pretrained(source)
    words = [*DEFAULT_INSTRUCTIONS.values(), "how many cubes are there", "the acting was brilliant", "two yes"]
    TaiChiProcessor(build_word_tokenizer(words)).save_pretrained(source)
    return export_model(source, tmp_path_factory.mktemp("hub") / "taichi-tiny", repo_id="tokcom/taichi-tiny")


@pytest.mark.slow
@pytest.mark.parametrize("transformers_release", ["installed", "newest"])
def test_exported_taichi_runs_its_cards_snippet_without_tokcom(exported_taichi, tmp_path, transformers_release):
    """TaiChi's Hub repo: remote code for the model and its three pipelines; the card's usage snippet (VQA,
    captioning, classification) runs where only torch, transformers, peft, numpy and scipy are installed, with
    this environment's transformers and with the newest release."""
    config = json.loads((exported_taichi / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_taichi.TaiChiForConditionalGeneration"
    assert set(config["custom_pipelines"]) == {"token-comm-vqa", "token-comm-image-to-text", "token-comm-text-classification"}
    python = isolated_python(tmp_path, ["torch", "transformers", "peft", "numpy", "scipy"], transformers_release)
    stdout = run_cards_snippet(python, exported_taichi, "tokcom/taichi-tiny", tmp_path)
    assert "'answer':" in stdout and "'generated_text':" in stdout and "'label':" in stdout


@pytest.fixture(scope="module")
def exported_unitocom(tmp_path_factory):
    """A tiny untrained UniToComModel (4 image tokens of 32x32 images, 2 audio tokens per 0.96 s window) with its
    processor, exported."""
    import torch

    from tokcom.modeling import UniToComConfig, UniToComModel
    from tokcom.modeling.processing_unitocom import UniToComProcessor
    from tokcom.training.tokenization import build_word_tokenizer

    source = tmp_path_factory.mktemp("unitocom_source")
    config = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 4}, audio_tokenizer_config={"num_tokens": 2},
                                 max_new_tokens=3)  # fmt: skip
    torch.manual_seed(0)
    UniToComModel(config).save_pretrained(source)
    tokenizer = build_word_tokenizer(["is there a red cube ?", "a small red cube", "yes no two"])
    UniToComProcessor.from_model_config(config, tokenizer).save_pretrained(source)
    return export_model(source, tmp_path_factory.mktemp("hub") / "unitocom-tiny", repo_id="tokcom/unitocom-tiny")


UNITOCOM_PIPELINES = {
    "token-comm-vqa": "token_comm_vqa.TokenCommVQAPipeline",  # dispatches to UniToComVQAPipeline for a UniToCom model
    "token-comm-text-to-image": "token_comm_unitocom.TokenCommTextToImagePipeline",
    "token-comm-asr": "token_comm_unitocom.TokenCommASRPipeline",
}


def test_exported_unitocom_repo_has_its_code_config_and_card(exported_unitocom):
    """UniToCom's Hub repo: the modules its model, processor and three pipelines import (the diffusion head, the
    tokenizers, the links; not TokCom's or TaiChi's models), `auto_map` and `custom_pipelines` for its tasks, and a
    card that names diffusers among the requirements (only this family's code needs it)."""
    names = {p.name for p in exported_unitocom.iterdir()}
    shipped = remote_code_files(FAMILIES["unitocom"])
    assert set(REQUIRED_FILES) <= names and set(shipped) <= names
    assert {"modeling_unitocom.py", "diffusion_head.py", "tokenization_unitocom.py", "processing_unitocom.py",
            "token_comm_unitocom.py", "channel_coding.py"} <= set(shipped)  # fmt: skip
    assert not {"modeling_tokcom.py", "modeling_taichi.py", "lora.py"} & names
    for name in shipped:
        assert not re.search(r"^\s*(from|import)\s+tokcom\b", (exported_unitocom / name).read_text(), re.MULTILINE), name
    config = json.loads((exported_unitocom / "config.json").read_text())
    assert config["model_type"] == "unitocom"
    assert config["auto_map"] == {"AutoConfig": "configuration_unitocom.UniToComConfig",
                                  "AutoModel": "modeling_unitocom.UniToComModel"}  # fmt: skip
    assert {task: spec["impl"] for task, spec in config["custom_pipelines"].items()} == UNITOCOM_PIPELINES
    assert all(spec["pt"] == ["AutoModel"] for spec in config["custom_pipelines"].values())

    requirements = remote_code_requirements({name: exported_unitocom / name for name in shipped})
    assert {"diffusers", "pillow", "torch", "transformers"} <= set(requirements) and "peft" not in requirements
    assert "diffusers" not in remote_code_requirements(remote_code_files(FAMILIES["taichi"]))
    assert "diffusers" not in remote_code_requirements(REMOTE_CODE_FILES)
    data = validate_model_card(exported_unitocom / "README.md")
    assert data.pipeline_tag == "visual-question-answering" and "text-to-image" in data.tags
    text = ModelCard.load(exported_unitocom / "README.md").text
    usage = text[text.index("## Usage"):text.index("```python")]  # "Without installing anything but `torch`, ..."
    named = [name for name in re.findall(r"`([\w.-]+)`", usage) if name in requirement_closure(requirements)]
    assert "diffusers" in named and set(requirements) <= requirement_closure(named)  # what the card names suffices
    for task in UNITOCOM_PIPELINES:
        assert f'pipeline("{task}", model="tokcom/unitocom-tiny", trust_remote_code=True)' in text


def test_install_and_export_carry_no_path_of_the_build_machine(tmp_path):
    """A UniToCom checkpoint in a build's layout (`<work>/mllm/model` beside `<work>/image_tokenizer/model`), whose
    config holds the image tokenizer's sub-config loaded from there (an absolute `_name_or_path`) and whose recipe
    loads it by absolute path: the installed and the exported folders hold neither; the recipe's path is relative
    to the work folder and says so."""
    import torch

    from tokcom.modeling import UniToComConfig, UniToComModel, UniToComTokenizerConfig, UniToComTokenizerModel
    from tokcom.modeling.processing_unitocom import UniToComProcessor
    from tokcom.portable import RELATIVE_PATHS_KEY
    from tokcom.training.build_default import install_checkpoint
    from tokcom.training.recipe import validate_recipe
    from tokcom.training.tokenization import build_word_tokenizer

    work = tmp_path / "work"
    torch.manual_seed(0)
    UniToComTokenizerModel(UniToComTokenizerConfig.tiny(num_tokens=4)).save_pretrained(work / "image_tokenizer" / "model")
    loaded = UniToComTokenizerModel.from_pretrained(work / "image_tokenizer" / "model").config.to_dict()
    assert loaded["_name_or_path"] == str(work / "image_tokenizer" / "model")  # what `UniToComStages.setup` copies
    config = UniToComConfig.tiny(image_tokenizer_config=loaded, audio_tokenizer_config={"num_tokens": 2})
    model_dir = work / "mllm" / "model"
    UniToComModel(config).save_pretrained(model_dir)
    UniToComProcessor.from_model_config(config, build_word_tokenizer(["is there a red cube ?", "yes no"])).save_pretrained(model_dir)
    recipe = {"name": "paths_test", "family": "unitocom", "stages": {"mllm": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3}},
              "model": {"image_tokenizer_path": str(work / "image_tokenizer" / "model")}}  # fmt: skip
    (model_dir / "tokcom_recipe.json").write_text(json.dumps(recipe))
    (model_dir / "README.md").write_text("card")
    (model_dir / "evaluation.json").write_text("{}")
    assert str(work) in (model_dir / "config.json").read_text()  # the leak this guards against

    installed = install_checkpoint(model_dir, "unitocom-paths", work_dir=work, target=tmp_path / "installed")
    exported = export_model(model_dir, tmp_path / "exported", repo_id="tokcom/unitocom-paths")
    for folder in (installed, exported):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".safetensors":
                assert str(tmp_path) not in path.read_text(), path
        written = json.loads((folder / "tokcom_recipe.json").read_text())
        assert written["model"]["image_tokenizer_path"] == "image_tokenizer/model"
        assert written[RELATIVE_PATHS_KEY] == ["model.image_tokenizer_path"]
        validate_recipe(written)
        reloaded = UniToComModel.from_pretrained(folder)
        assert reloaded.config.image_tokenizer_config.num_tokens == 4
        for name, value in UniToComModel.from_pretrained(model_dir).state_dict().items():
            assert torch.equal(reloaded.state_dict()[name], value), name


@pytest.mark.slow
@pytest.mark.parametrize("transformers_release", ["installed", "newest"])
def test_exported_unitocom_runs_its_cards_snippet_without_tokcom(exported_unitocom, tmp_path, transformers_release):
    """UniToCom's card snippet (VQA on an image, text-to-image to a PIL image, ASR on 1 s of 16 kHz audio) runs where
    only the exported code's requirements are installed: torch, transformers, numpy, scipy, diffusers (the diffusion
    head's schedulers; transformers checks it when loading the model code) and pillow, with this environment's
    transformers and with the newest release."""
    shipped = {name: exported_unitocom / name for name in remote_code_files(FAMILIES["unitocom"])}
    python = isolated_python(tmp_path, remote_code_requirements(shipped), transformers_release)
    stdout = run_cards_snippet(python, exported_unitocom, "tokcom/unitocom-tiny", tmp_path)
    assert "{'answer': " in stdout and "'transmission': {'image': {'tokens': 4," in stdout  # VQA
    assert "\n(32, 32)\n" in stdout  # text-to-image: the generated PIL image's size
    assert "{'text': " in stdout and "'transmission': {'audio': {'tokens': 8," in stdout  # ASR: 4 windows x 2 tokens
    assert "AUTOMODEL UniToComModel" in stdout
