"""Fast start: which heavy modules the light entry points import (no timing here: see benchmarks/startup_benchmark.py),
and that registration with transformers still happens after a light `import tokcom`. Each check runs in a fresh
process, since this test process has imported everything already."""

import json
import subprocess
import sys

import pytest

from tokcom.pipelines.allocation import default_network  # the paper's network (Table I): a small problem

HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets", "gradio")
REPORT = "import json, sys; print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))".format(heavy=HEAVY)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _heavy_imported(code: str) -> list[str]:
    return json.loads(_run(code + "\n" + REPORT).strip().splitlines()[-1])


def _cli(*argv: str) -> str:
    """`tokcom ARGV...` as the console script runs it (`tokcom.cli.main`), then the heavy modules it imported."""
    return f"import sys\nfrom tokcom.cli import main\ntry:\n    sys.exit(main({list(argv)!r}))\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"


def test_help_imports_no_heavy_module():
    assert _heavy_imported(_cli("--help")) == []


@pytest.mark.parametrize("method", ["proposed", "alternating"])
def test_allocate_imports_no_heavy_module(tmp_path, method):
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(default_network()))
    code = _cli("allocate", str(problem), "--method", method, "--output", str(tmp_path / "out.json"))
    assert _heavy_imported(code) == []
    assert len(json.loads((tmp_path / "out.json").read_text())["devices"]) == 2


@pytest.mark.parametrize(
    "statement",
    ["import tokcom", "import tokcom.pipelines.allocation", "import tokcom.modeling.link_budget",
     "import tokcom.modeling.media_io", "import tokcom.registry", "import tokcom.pipelines, tokcom.modeling"],
)  # fmt: skip
def test_light_imports_import_no_heavy_module(statement):
    assert _heavy_imported(statement) == []


def test_channel_still_exports_the_link_budget():
    from tokcom.modeling import channel, link_budget

    for name in link_budget.__all__:
        assert getattr(channel, name) is getattr(link_budget, name)


REGISTERED = """
from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
print(json.dumps([type(AutoConfig.for_model("tokcom")).__name__, type(AutoConfig.for_model("tokcom_channel")).__name__,
                  "token-comm-vqa" in PIPELINE_REGISTRY.get_supported_tasks(),
                  PIPELINE_REGISTRY.supported_tasks["token-comm-vqa"]["impl"].__name__]))
"""


@pytest.mark.parametrize(
    "first",
    [
        "import tokcom\nfrom transformers import pipeline, AutoConfig",  # transformers after tokcom: the hook
        "import transformers\nimport tokcom",  # transformers first: registered at once
        "import tokcom\nimport peft",  # peft imports transformers while half-imported itself
        "from tokcom.modeling import TokComConfig",  # tokcom's own model code imports transformers
        "from tokcom.modeling.modeling_tokcom import TokComForAVQA",
        "import tokcom.pipelines.token_comm_vqa",
    ],
)
def test_registration_happens_whichever_module_imports_transformers_first(first):
    out = _run("import json\n" + first + "\n" + REGISTERED)
    assert json.loads(out.strip().splitlines()[-1]) == ["TokComConfig", "ChannelConfig", True, "TokenCommVQAPipeline"]


def test_lazy_attributes_and_auto_model():
    code = """
import json, tokcom
names = [tokcom.TokComConfig.__name__, tokcom.ChannelConfig.__name__, tokcom.TokComForAVQA.__name__,
         tokcom.modeling.TokenChannel.__name__, tokcom.pipelines.TokenCommVQAPipeline.__name__,
         tokcom.pipelines.allocate.__name__, tokcom.modeling.dbm_to_w.__module__]
from transformers import AutoModel
from tokcom.defaults import default_model_path
names.append(type(AutoModel.from_pretrained(default_model_path())).__name__)
print(json.dumps(names))
"""
    assert json.loads(_run(code).strip().splitlines()[-1]) == [
        "TokComConfig", "ChannelConfig", "TokComForAVQA", "TokenChannel", "TokenCommVQAPipeline", "allocate",
        "tokcom.modeling.link_budget", "TokComForAVQA",
    ]  # fmt: skip
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import tokcom

        tokcom.nothing  # noqa: B018


def test_register_is_idempotent():
    import tokcom.registration as registration

    registration.register()
    registration.register()
    assert registration.is_registered()
