"""Train any tokcom model family from a recipe (the recipe's `family` names it; default `"tokcom"`).

    accelerate launch -m tokcom.training.train --recipe RECIPE --output-dir DIR [--stages ...] [--resume]
    tokcom train --recipe RECIPE --output-dir DIR                  (same, in one process)

On CPU, a real 2-process run needs `--multi_gpu` and `ACCELERATE_USE_CPU=true` (see README):

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no -m tokcom.training.train --recipe R.json --output-dir D
"""

from __future__ import annotations

import argparse

from tokcom.training.engine import close_distributed, train
from tokcom.training.recipe import load_recipe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True, help="recipe JSON path or name (see training/recipes/)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--stages", nargs="+", help="stages to run (default: all of the family's)")
    parser.add_argument("--resume", action="store_true", help="continue from progress.json and saved states")
    parser.add_argument("--init-model", help="start from this checkpoint instead of a fresh model")
    parser.add_argument("--max-steps", type=int, help="stop (resumably) after this many optimization steps")
    args = parser.parse_args(argv)
    final = train(load_recipe(args.recipe), args.output_dir, args.stages, args.resume, args.init_model, args.max_steps)
    close_distributed()  # every rank meets before exiting
    print(f"model written to {final}" if final else f"stopped after --max-steps; continue with --resume in {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
