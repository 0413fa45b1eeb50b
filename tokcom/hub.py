"""Hub export and upload: `tokcom export` writes a complete Hub model repo, `tokcom publish` uploads it.

An exported folder is self-contained for `trust_remote_code=True`: besides the weights, config, tokenizer and
processor files it holds flat copies of the model, processor, channel, pipeline and allocator code, with this
package's absolute imports (`from tokcom.modeling.channel import ...`) rewritten to relative ones
(`from .channel import ...`), and a `config.json` whose `auto_map` and `custom_pipelines` point at them. So
`AutoModel.from_pretrained(DIR, trust_remote_code=True)` and `pipeline("token-comm-vqa", model=DIR,
trust_remote_code=True)` work where `tokcom` is not installed.

>>> import tempfile, pathlib
>>> out = export_model(None, pathlib.Path(tempfile.mkdtemp()) / "tokcom-avqa-tiny")  # the embedded default
>>> sorted(json.loads((out / "config.json").read_text())["auto_map"])
['AutoConfig', 'AutoModel']
>>> validate_model_card(out / "README.md").pipeline_tag
'visual-question-answering'

Every family of `tokcom.registry.FAMILIES` with a processor exports this way (TokCom, TaiChi, UniToCom): the code
files, `auto_map` and `custom_pipelines` come from the registry and the import graph, the card from
`tokcom.training.model_card.render_model_card` (which renders each family's card).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

import tokcom.modeling as _modeling_package
from tokcom.files import staged_directory
import tokcom.pipelines as _pipelines_package
from tokcom.registry import FAMILIES, TASKS, Family, family_for_model_type, import_object

_CODE_PACKAGES = {"modeling": _modeling_package, "pipelines": _pipelines_package}


def remote_code_files(family: Family) -> dict[str, Path]:
    """The files a family's Hub repo needs for `trust_remote_code`: its config, model and processor modules and the
    pipelines of its tasks, plus, recursively, every module of `tokcom.modeling` / `tokcom.pipelines` they import
    (relatively or absolutely, at the top or inside a function). Returns `{file name in the repo: source path}`;
    computed from the imports, so a new sibling module is shipped without listing it.

    >>> sorted(remote_code_files(FAMILIES["tokcom"]))[:3]
    ['allocation.py', 'allocation_solvers.py', 'channel.py']
    """
    roots = [family.config_class, family.model_class, family.processor_class]
    roots += [TASKS[task].pipeline_class for task in family.tasks]
    pending = [_module_path(dotted.rpartition(".")[0]) for dotted in roots if dotted]
    files: dict[str, Path] = {}
    while pending:
        path = pending.pop()
        if path.name in files:
            if files[path.name] != path:
                raise ValueError(f"Remote code needs two files named {path.name} ({files[path.name]}, {path}); rename one.")
            continue
        files[path.name] = path
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1 and node.module:  # from .sibling import X
                pending.append(path.parent / f"{node.module}.py")
            elif node.level == 0 and node.module and node.module.startswith(("tokcom.modeling.", "tokcom.pipelines.")):
                pending.append(_module_path(node.module))
    return dict(sorted(files.items()))


def _module_path(dotted_module: str) -> Path:
    """`tokcom.modeling.channel` -> the installed file `.../modeling/channel.py`."""
    parts = dotted_module.split(".")
    if len(parts) != 3 or parts[0] != "tokcom" or parts[1] not in _CODE_PACKAGES:
        raise ValueError(f"Remote code must live in tokcom.modeling or tokcom.pipelines, got {dotted_module}.")
    return Path(_CODE_PACKAGES[parts[1]].__file__).parent / f"{parts[2]}.py"


def remote_code_requirements(code_files: dict[str, Path]) -> list[str]:
    """The distributions (pip names, sorted) that the shipped `code_files` import, as transformers sees them: its
    `get_imports` (every `import` / `from X import` outside `try` blocks, at the top or inside a function) is what
    `from_pretrained(..., trust_remote_code=True)` checks, so a module imported lazily is still required. The
    standard library and `tokcom` (rewritten to relative imports) are left out; import names are mapped to their
    installed distributions (`PIL` -> `pillow`).

    >>> remote_code_requirements(remote_code_files(FAMILIES["unitocom"]))
    ['diffusers', 'huggingface-hub', 'numpy', 'pillow', 'scipy', 'torch', 'transformers']
    """
    from packaging.utils import canonicalize_name
    from transformers.dynamic_module_utils import get_imports

    distributions = metadata.packages_distributions()
    modules = {name for path in code_files.values() for name in get_imports(path)}
    modules -= {"tokcom", "__future__", *sys.stdlib_module_names}
    return sorted({canonicalize_name(distributions.get(name, [name])[0]) for name in modules})


def auto_map(family: Family) -> dict[str, str]:
    """`config.json`'s `auto_map` for `family`: AutoConfig and each of its Auto classes -> `module.Class`."""
    config_module, _, config_name = family.config_class.rpartition(".")
    model_module, _, model_name = family.model_class.rpartition(".")
    mapping = {"AutoConfig": f"{config_module.rpartition('.')[2]}.{config_name}"}
    mapping.update({auto: f"{model_module.rpartition('.')[2]}.{model_name}" for auto in family.auto_classes})
    return mapping


def custom_pipelines(family: Family) -> dict[str, dict]:
    """`config.json`'s `custom_pipelines` for `family`: each of its tasks -> its pipeline file and class."""
    pipelines = {}
    for name in family.tasks:
        module, _, class_name = TASKS[name].pipeline_class.rpartition(".")
        pipelines[name] = {"impl": f"{module.rpartition('.')[2]}.{class_name}", "pt": ["AutoModel"], "tf": [], "type": TASKS[name].type}
    return pipelines


# TokCom AVQA's (the first family's) values, computed
TASK = "token-comm-vqa"
REMOTE_CODE_FILES = remote_code_files(FAMILIES["tokcom"])
AUTO_MAP = auto_map(FAMILIES["tokcom"])
CUSTOM_PIPELINES = custom_pipelines(FAMILIES["tokcom"])
REQUIRED_FILES = ("config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json")
REQUIRED_CARD_FIELDS = ("library_name", "pipeline_tag", "license", "tags", "datasets")
_ABSOLUTE_IMPORT = re.compile(r"^(\s*)from tokcom\.(?:modeling|pipelines)\.(\w+) import", re.MULTILINE)
_ANY_TOKCOM_IMPORT = re.compile(r"^\s*(?:from|import)\s+tokcom\b", re.MULTILINE)


class PublishError(RuntimeError):
    """`tokcom publish` could not validate or upload a folder; the message says why and what to do."""


def remote_code_source(source: str, file_name: str, shipped=None) -> str:
    """`source` of one module with `from tokcom.modeling.X import` / `from tokcom.pipelines.X import` rewritten to
    `from .X import`; `ValueError` if another import of `tokcom` remains (it would not load without the package).

    >>> remote_code_source("from tokcom.modeling.channel import TokenChannel\\n", "a.py")
    'from .channel import TokenChannel\\n'
    """
    rewritten = _ABSOLUTE_IMPORT.sub(lambda m: f"{m.group(1)}from .{m.group(2)} import", source)
    for match in _ABSOLUTE_IMPORT.finditer(source):
        if f"{match.group(2)}.py" not in (REMOTE_CODE_FILES if shipped is None else shipped):
            raise ValueError(f"{file_name} imports tokcom.*.{match.group(2)}, which is not exported remote code.")
    if _ANY_TOKCOM_IMPORT.search(rewritten):
        raise ValueError(f"{file_name} still imports `tokcom` after rewriting; remote code must be self-contained.")
    return rewritten


def resolve_model(model: str | os.PathLike | None) -> str:
    from tokcom.defaults import default_model_path

    if model is None or str(model) == "default":
        return str(default_model_path())
    path = Path(model)
    looks_like_path = path.is_absolute() or str(model).startswith((".", "~")) or str(model).count("/") != 1
    if path.exists() or looks_like_path:
        if not (path.expanduser() / "config.json").is_file():
            raise FileNotFoundError(f"`--model` {path} is not a checkpoint folder (no config.json there).")
        check_model_folder(path.expanduser())
        return str(path.expanduser())
    return str(model)  # OWNER/NAME: a Hub repo id (from_pretrained downloads it when the Hub is reachable)


def check_model_folder(folder: str | os.PathLike) -> None:
    """`ValueError` naming the file when a local checkpoint's `config.json` is not a JSON object with a known
    `model_type` and valid settings, or its processor files (`processor_config.json`, `tokenizer.json`,
    `tokenizer_config.json`) are not JSON objects; every command that takes `--model` checks here first, so garbage
    ends in one line instead of a loader's traceback."""
    from transformers import AutoConfig

    from tokcom.modeling.processing_tokcom import check_processor_files, read_json_object

    config_path = Path(folder) / "config.json"
    config = read_json_object(config_path)
    if not isinstance(config.get("model_type"), str):
        raise ValueError(f"{config_path} has no `model_type` (a string naming the model family); re-export it.")
    try:
        AutoConfig.from_pretrained(folder)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{config_path} holds invalid settings: {reason}") from None
    check_processor_files(folder)


def _evaluation(model_dir: Path, results: str | os.PathLike | None) -> dict | None:
    path = Path(results) if results is not None else model_dir / "evaluation.json"
    if not path.is_file():
        if results is not None:
            raise FileNotFoundError(f"`--results` file not found: {path}")
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def export_model(
    model: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    repo_id: str | None = None,
    results: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the Hub repo of a checkpoint of a family of `tokcom.registry.FAMILIES` (TokCom, TaiChi, UniToCom) into
    `output_dir` and return it.

    Args:
        model: a checkpoint folder or Hub repo id; `None` or `"default"` is the embedded default (TokCom's).
        output_dir: the folder to create; it must not exist unless `overwrite=True`. The repo is written to a
            temporary sibling and moved into place at the end, so a failure leaves nothing half-written.
        repo_id: what the card's usage snippet loads (default: the output folder's name).
        results: an evaluation JSON (`tokcom evaluate --output`, or `build_default`'s summary); default
            `<model>/evaluation.json` when present. It fills the card's `model-index` and results tables.
        overwrite: replace an existing `output_dir`.
    """
    from transformers import AutoConfig

    from tokcom.portable import RECIPE_FILE, portable_config, portable_recipe, recipe_work_dir
    from tokcom.training.model_card import render_model_card

    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:  # checked before loading anything
        raise FileExistsError(f"`--output` {output_dir} already exists; pass --overwrite to replace it.")
    source = resolve_model(model)
    family = family_for_model_type(AutoConfig.from_pretrained(source).model_type)
    loaded = import_object(family.model_class).from_pretrained(source)
    processor = import_object(family.processor_class).from_pretrained(source)
    code_files = remote_code_files(family)
    source_dir = Path(source) if Path(source).is_dir() else Path(loaded.name_or_path)
    evaluation = _evaluation(source_dir, results)

    with staged_directory(output_dir, overwrite, "--output") as staging:
        loaded.save_pretrained(staging)
        processor.save_pretrained(staging)
        config = portable_config(json.loads((staging / "config.json").read_text(encoding="utf-8")))  # no local paths
        config["auto_map"] = auto_map(family)
        config["custom_pipelines"] = custom_pipelines(family)
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for target, path in code_files.items():
            text = path.read_text(encoding="utf-8")
            (staging / target).write_text(remote_code_source(text, target, code_files), encoding="utf-8")
        if (source_dir / RECIPE_FILE).is_file():  # paths into the build's work folder made relative to it
            recipe = json.loads((source_dir / RECIPE_FILE).read_text(encoding="utf-8"))
            recipe = portable_recipe(recipe, recipe_work_dir(recipe, source_dir))
            (staging / RECIPE_FILE).write_text(json.dumps(recipe, indent=2), encoding="utf-8")
        if evaluation is not None:
            (staging / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
        command = (evaluation or {}).get("command", "tokcom evaluate")
        card_text = render_model_card(staging, evaluation, command, name=output_dir.name, model_id=repo_id or output_dir.name)
        ModelCard(card_text).save(staging / "README.md")
        validate_model_card(staging / "README.md")
    return output_dir


def validate_model_card(path: str | os.PathLike) -> ModelCardData:
    """Parse and check a model card offline: YAML front matter with `REQUIRED_CARD_FIELDS`, and a `model-index` whose
    results parse into `EvalResult`s when present. Returns the card data; `PublishError` names what is wrong.

    (`ModelCard.validate()` asks the Hub's server, so it cannot run offline; this checks what it can locally.)
    """
    path = Path(path)
    if not path.is_file():
        raise PublishError(f"No model card at {path}; `tokcom export` writes one.")
    try:
        card = ModelCard.load(path)
    except Exception as error:  # huggingface_hub raises ValueError/yaml errors for malformed front matter
        raise PublishError(f"{path} has no valid YAML front matter: {error}") from None
    data = card.data
    missing = [field for field in REQUIRED_CARD_FIELDS if not getattr(data, field, None)]
    if missing:
        raise PublishError(f"{path} lacks card metadata {missing}; every tokcom card declares {list(REQUIRED_CARD_FIELDS)}.")
    if data.library_name != "transformers":
        raise PublishError(f"{path}: `library_name` must be 'transformers', got {data.library_name!r}.")
    for result in data.eval_results or []:
        if not isinstance(result.metric_value, (int, float)):
            raise PublishError(f"{path}: model-index value {result.metric_value!r} of {result.metric_name!r} is not a number.")
    return data


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy")
# file stems such as `token`, `hf_token`, `aws-credentials`, `secrets`, `id_rsa`; or key/certificate suffixes
CREDENTIAL_NAMES = re.compile(
    r"^((.*[_-])?(token|credentials?|secrets?|passwords?)|id_rsa.*|id_ed25519.*)(\.[a-z0-9]+)?$|\.(pem|key|p12)$", re.I
)


def upload_files(folder: Path) -> list[dict]:
    """The one upload filter of `tokcom publish`, for models and Spaces: every file under `folder` except hidden
    ones (any path part starting with "."; e.g. `.env`, `.git/`) and `__pycache__`; `PublishError` when a
    pickle (`PICKLE_SUFFIXES`) or a credential-looking file (`CREDENTIAL_NAMES`) would be sent. Returns
    `[{"path", "bytes"}]` sorted by path; exactly these files are uploaded."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in parts):
            continue
        files.append(path)
    pickled = [p.relative_to(folder).as_posix() for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickled:
        raise PublishError(f"{folder} holds pickled files {pickled}; tokcom publishes safetensors only. Remove them.")
    secret = [p.relative_to(folder).as_posix() for p in files if CREDENTIAL_NAMES.search(p.name)]
    if secret:
        raise PublishError(f"{folder} holds files that look like credentials {secret}; remove them before publishing.")
    return [{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size} for p in files]


def publish_plan(folder: str | os.PathLike) -> list[dict]:
    """Check an exported folder (`REQUIRED_FILES`, a valid card) and list what an upload sends (`upload_files`:
    no hidden files, no pickles, no credentials): `[{"path": relative path, "bytes": size}]`, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"`folder` {folder} is not a directory; create it with `tokcom export`.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(f"{folder} is not a complete export: missing {missing}. Run `tokcom export` first.")
    validate_model_card(folder / "README.md")
    return upload_files(folder)


def publish_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    repo_type: str = "model",
    token: str | None = None,
) -> dict:
    """Upload an exported folder to the Hub (`create_repo(exist_ok=True)` + `upload_folder`).

    `dry_run=True` only validates and returns the plan. The token comes from `token`, `HF_TOKEN` or `hf auth
    login`; it is never printed or returned. Network and authentication failures raise `PublishError`.
    Returns `{"repo_id", "repo_type", "private", "files", "total_bytes", "dry_run", "url"}`.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise PublishError(f"`--repo-id` must look like OWNER/NAME, got {repo_id!r}.")
    if repo_type not in ("model", "space"):
        raise PublishError(f"`repo_type` must be 'model' or 'space', got {repo_type!r}.")
    files = publish_plan(folder) if repo_type == "model" else _space_plan(folder)
    report = {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "private": private,
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files),
        "dry_run": dry_run,
        "url": None,
    }
    if dry_run:
        return report
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    token = token or get_token()
    if not token:
        raise PublishError("No Hugging Face token: set HF_TOKEN or run `hf auth login` (the token is never printed).")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True,
                              **({"space_sdk": "gradio"} if repo_type == "space" else {}))  # fmt: skip
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                          allow_patterns=[f["path"] for f in files],  # exactly the planned files
                          commit_message="Upload with tokcom publish")  # fmt: skip
    except OfflineModeIsEnabled:
        raise PublishError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it (and be online) to publish.") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise PublishError(f"The Hub refused the upload of {repo_id} (HTTP {status}); check the token's write access.") from None
    except OSError as error:  # connection errors (httpx.ConnectError subclasses are caught below)
        raise PublishError(f"Could not reach the Hugging Face Hub to upload {repo_id}: {error.__class__.__name__}.") from None
    except Exception as error:
        if type(error).__module__.startswith(("httpx", "httpcore")):
            raise PublishError(f"Could not reach the Hugging Face Hub to upload {repo_id}: {error.__class__.__name__}.") from None
        raise
    report["url"] = str(url)
    return report


def _space_plan(folder: str | os.PathLike) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"`folder` {folder} is not a directory; build one with `tokcom space --build-dir DIR`.")
    for name in ("app.py", "README.md", "requirements.txt"):
        if not (folder / name).is_file():
            raise PublishError(f"{folder} is not a Space folder: missing {name}. Build one with `tokcom space --build DIR`.")
    return upload_files(folder)


__all__ = [
    "AUTO_MAP",
    "CUSTOM_PIPELINES",
    "PublishError",
    "REMOTE_CODE_FILES",
    "auto_map",
    "custom_pipelines",
    "export_model",
    "publish_folder",
    "publish_plan",
    "remote_code_files",
    "remote_code_requirements",
    "check_model_folder",
    "resolve_model",
    "upload_files",
    "remote_code_source",
    "validate_model_card",
]
