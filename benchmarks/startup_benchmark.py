"""Start-up time of tokcom's entry points beside `python -c pass` (issue 11, part 7: fast start).

Each command runs in a fresh process `--runs` times, interleaved (one round runs every command once, so slow phases
of a shared machine hit all of them alike); reported: the median wall time [s] and its ratio to the median of
`python -c pass`, plus which heavy modules (torch, transformers, ...) the Python ones import. Absolute times vary
from machine to machine and from minute to minute; the ratios are what to compare.

`import tokcom, transformers` is where the cost of registration went: the post-import hook registers tokcom's
families and tasks right after transformers, which imports torch, peft and tokcom's model and pipeline code (the
Auto classes and the pipeline registry need the classes themselves); `import transformers` alone is its reference.

    python benchmarks/startup_benchmark.py [--runs 7] [--output results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokcom.pipelines.allocation import default_network  # the paper's network (Table I): a small problem

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets", "gradio")


def _tokcom_command() -> list[str]:
    script = Path(sys.executable).parent / "tokcom"  # the console script `pip install` writes
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tokcom.cli"]


def commands(problem: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "tokcom --help": [*_tokcom_command(), "--help"],
        "tokcom allocate PROBLEM.json": [*_tokcom_command(), "allocate", str(problem)],
        'python -c "import tokcom.pipelines.allocation"': [python, "-c", "import tokcom.pipelines.allocation"],
        'python -c "import tokcom"': [python, "-c", "import tokcom"],
        'python -c "import transformers"': [python, "-c", "import transformers"],
        'python -c "import tokcom, transformers"': [python, "-c", "import tokcom, transformers"],
    }


def heavy_modules(statement: str) -> list[str]:
    """The heavy modules that `statement` imports, in a fresh process."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(num_runs: int) -> dict:
    if num_runs < 1:
        raise ValueError(f"`--runs` must be >= 1, got {num_runs}.")
    with tempfile.TemporaryDirectory() as folder:
        problem = Path(folder) / "problem.json"
        problem.write_text(json.dumps(default_network()), encoding="utf-8")
        todo = commands(problem)
        times = {name: [] for name in todo}
        for name, argv in todo.items():  # warm the file cache once, untimed
            subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
        for _ in range(num_runs):
            for name, argv in todo.items():
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
                times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times["python -c pass"])
    rows = []
    for name, runs in times.items():
        median = statistics.median(runs)
        rows.append({"command": name, "median_s": round(median, 4), "ratio_to_python_pass": round(median / baseline, 2),
                     "runs_s": [round(t, 4) for t in runs]})  # fmt: skip
    imports = {
        "tokcom --help": heavy_modules("import sys\nfrom tokcom.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"),
        "import tokcom.pipelines.allocation": heavy_modules("import tokcom.pipelines.allocation"),
        "import tokcom": heavy_modules("import tokcom"),
        "import tokcom, transformers": heavy_modules("import tokcom, transformers"),
    }
    return {
        "benchmark": "startup",
        "command": f"python benchmarks/startup_benchmark.py --runs {num_runs}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": num_runs,
        "results": rows,
        "heavy_modules_imported": imports,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (median reported)")
    parser.add_argument("--output", default=str(ROOT / "results" / "startup.json"))
    args = parser.parse_args(argv)
    report = run(args.runs)
    print(f"{'command':<48} {'median [s]':>10} {'x python -c pass':>17}")
    for row in report["results"]:
        print(f"{row['command']:<48} {row['median_s']:>10.3f} {row['ratio_to_python_pass']:>17.1f}")
    for statement, modules in report["heavy_modules_imported"].items():
        print(f"{statement}: imports {', '.join(modules) or 'no heavy module'}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
