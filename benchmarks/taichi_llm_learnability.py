"""How fast does TaiChi's tiny LLM, trained from scratch, learn shapes-world VQA from an exact scene description?

A diagnostic for issue 14 (the embedded default's text pretraining stalls at the answer priors). It trains only the
LLM of a fresh `taichi_tiny` model on VQA questions of the chosen families, over an ideal link, and prints the
first-answer-token accuracy on fresh training batches every `--eval-every` steps. Layouts of the scene:

- `cells`: each coarse cell's scene words summed in the 16 visual slots after the text (what `pretrain_text` does);
- `words_and_cells`: the objects' words also appended to the question as text;
- `words`: the objects' words appended to the question, no visual slots (a plain text task).

    python benchmarks/taichi_llm_learnability.py [--families query_color] [--layout cells] [--learning-rate 1e-3]
        [--steps 1000] [--eval-every 50] [--threads 1] [--curriculum-steps 0] [--eval-size 128]
        [--output results/taichi_llm_learnability/NAME.json]

What it showed (2-core CPU, 1 thread; `results/taichi_llm_learnability/`, 128 fresh training questions per point):
`query_color` alone in the `cells` layout at 1e-3 sits near chance for ~200 steps, then reaches 0.77 at step 400
and 0.80 at 1000 (`query_color_cells.json`); all 12 families together at 2e-3 stay near the family priors
(0.39-0.58) for 1000 steps (`all_families_cells.json`) and reach only 0.456 at 2400 steps
(`all_families_cells_2400.json`, `--steps 2400 --eval-every 300 --eval-size 384`); bringing the families in one at
a time every 150 steps does not help (0.417 at 2400, `all_families_cells_curriculum.json`, `--curriculum-steps
150`). The scene representation is learnable; learning the families together is what stalls.

Why they stalled: the tied LM head. A cell is the sum of its four words' embeddings; copied to the answer position,
it scores all four words under a tied head (`query_color` answered `cube`), and the LLM must learn to cancel three.
With `--untie` (its own head, what `TaiChiConfig.tiny()` now builds) at 8e-4 cosine over the schedule's steps:
the four query families together reach 0.79 at step 1000 (`query_families_untied.json`; tied they sit at chance,
0.38, at step 2000, `query_families_tied.json`); all 12 families reach 0.80 at 3000 and 0.79 at 4000
(`all_families_untied.json`; tied 0.60-0.66); with 8 heads instead of 4 (same width, `--model '{"text_config":
{"num_attention_heads": 8, "num_key_value_heads": 8}}'`, the recipe's setting) 0.83 at 2000 and 0.91 at 3000
(`all_families_untied_8_heads.json`, stopped at 3000 of 4000). Those runs shared the 2 cores two at a time.

Is the held-out gap a data problem? `--held-out` scores 500 questions of the recipe's test split per point. With the
recipe's settings (`--untie --cosine --learning-rate 8e-4 --steps 3000 --eval-every 1000 --eval-size 500 --model
'{"text_config": {"num_attention_heads": 8, "num_key_value_heads": 8}}'`), 4,000 training scenes reach 0.868 and
16,000 reach 0.852 at step 3000 (`held_out_4000_scenes.json`, `held_out_16000_scenes.json`, `--train-scenes`): 4x
the scenes does not help; count and compare are what stay low (compare_fewer 0.57-0.61, compare_equal 0.56-0.72).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from unitocom_common import finish_report  # noqa: E402

LAYOUTS = ("cells", "words_and_cells", "words")


def run(families, layout: str, learning_rate: float, steps: int, eval_every: int, train_scenes: int = 1000,
        curriculum_steps: int = 0, eval_size: int = 128, model_overrides: dict | None = None,
        batch_size: int = 32, cosine: bool = False, beta2: float = 0.999, max_grad_norm: float = 0.0,
        untie: bool = False, held_out: bool = False) -> dict:  # fmt: skip
    import tempfile

    from tokcom.modeling import Link
    from tokcom.modeling.decoding import answer_labels
    from tokcom.training.data.shapes_questions import QUESTION_FAMILIES
    from tokcom.training.recipe import load_recipe
    from tokcom.training.stages_taichi import TaiChiStages

    families = list(families or QUESTION_FAMILIES)
    recipe = load_recipe("taichi_tiny")
    recipe["data"]["train_scenes"] = train_scenes
    recipe["model"] = {**recipe.get("model", {}), **(model_overrides or {})}
    with tempfile.TemporaryDirectory() as folder:
        family = TaiChiStages.setup(recipe, None, folder)
    corpus, tokenizer, model = family.data, family.processor.tokenizer, family.model
    questions = [i for i, q in enumerate(corpus.questions) if q["family"] in families]
    if not questions:
        raise ValueError(f"`--families` must name some of {QUESTION_FAMILIES}, got {families}.")
    by_family = {name: [i for i in questions if corpus.questions[i]["family"] == name] for name in families}
    test = None
    if held_out:  # evaluate on the recipe's test split (scenes never trained on) instead of fresh training questions
        from tokcom.training.taichi_corpus import TaiChiCorpus

        test = TaiChiCorpus.build({**recipe["data"], "seed": recipe.get("seed", 0)}, "test")
        test_questions = [i for i, q in enumerate(test.questions) if q["family"] in families]
    if untie:  # a separate LM head instead of the tied word embeddings
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    objective = family.objective("pretrain_text")
    names = family.trainable_parameters("pretrain_text", recipe["stages"]["pretrain_text"])
    parameters = [p for n, p in model.named_parameters() if n in names or (untie and n == "lm_head.weight")]
    for n, p in model.named_parameters():
        p.requires_grad_(n in names or (untie and n == "lm_head.weight"))
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0, betas=(0.9, beta2))
    scheduler = None
    if cosine:  # the engine's schedule: linear warmup (steps // 20), then cosine decay to 0
        from transformers import get_cosine_schedule_with_warmup

        scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    links = {"visual": Link(snr_db=float("inf"), num_tokens=16, channel_type="none"),
             "text": Link(snr_db=float("inf"), channel_type="none")}  # fmt: skip
    rng = np.random.default_rng(0)

    def batch(size, step=None, split=None):
        split, pool = split or corpus, questions
        if split is not corpus:
            pool = test_questions
        elif curriculum_steps and step is not None:  # family k joins at step k * curriculum_steps
            pool = [i for name in families[: 1 + step // curriculum_steps] for i in by_family[name]]
        rows = [split.questions[i] for i in rng.choice(pool, size)]
        texts = [row["question"] for row in rows]
        if layout != "cells":
            texts = [text + " " + " ".join(w for cell in split.scene_words([row["image_index"]])[0] for w in cell
                                           if w != "empty") for text, row in zip(texts, rows)]  # fmt: skip
        encoded = tokenizer(family.processor.prompts("vqa", texts), padding=True, return_tensors="pt")
        out = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "links": links,
               "labels": answer_labels(tokenizer, [row["answer"] for row in rows])}  # fmt: skip
        if layout != "words":
            out["scene_word_ids"] = split.scene_word_ids([row["image_index"] for row in rows], tokenizer)
        return out, rows

    curve, began = [], time.time()
    model.train()
    for step in range(steps + 1):
        if step % eval_every == 0:
            with torch.no_grad():
                inputs, rows = batch(eval_size, split=test)
                logits = objective_logits(objective, inputs)
                predictions = tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
                hits = [p == row["answer"] for p, row in zip(predictions, rows)]
                per_family = {name: round(float(np.mean([h for h, row in zip(hits, rows) if row["family"] == name])), 3)
                              for name in families if any(row["family"] == name for row in rows)}  # fmt: skip
            curve.append({"step": step, "accuracy": float(np.mean(hits)), "seconds": round(time.time() - began, 1),
                          "per_family": per_family})  # fmt: skip
            print(json.dumps(curve[-1]), flush=True)
        if step == steps:
            break
        inputs, _ = batch(batch_size, step)
        loss = objective(**inputs)
        optimizer.zero_grad()
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return {"families": families, "layout": layout, "learning_rate": learning_rate, "steps": steps,
            "batch_size": batch_size, "cosine": cosine, "model": model_overrides or {},
            "curriculum_steps": curriculum_steps, "beta2": beta2, "max_grad_norm": max_grad_norm, "untie": untie,
            "train_scenes": train_scenes, "held_out": held_out, "curve": curve}


def objective_logits(objective, inputs: dict) -> torch.Tensor:
    """First-answer-token logits `(batch, vocab)` of the objective's model on `inputs` (labels dropped)."""
    from tokcom.training.objectives import word_embeddings

    model = objective.model
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    ids = inputs.pop("scene_word_ids", None)
    visual = None if ids is None else word_embeddings(model.embed_text, ids)
    return model(**inputs, visual_embeds=visual).logits[:, -1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", default=None)
    parser.add_argument("--layout", choices=LAYOUTS, default="cells")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--curriculum-steps", type=int, default=0,
                        help="train the families one more at a time, each joining this many steps after the last")
    parser.add_argument("--eval-size", type=int, default=128, help="fresh questions per evaluation point")
    parser.add_argument("--model", type=json.loads, default=None,
                        help='TaiChiConfig.tiny overrides as JSON, e.g. \'{"text_config": {"num_hidden_layers": 6}}\'')
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cosine", action="store_true", help="warmup then cosine decay (the engine's schedule)")
    parser.add_argument("--beta2", type=float, default=0.999, help="AdamW's second-moment decay")
    parser.add_argument("--max-grad-norm", type=float, default=0.0, help="clip the gradient norm (0: no clipping)")
    parser.add_argument("--untie", action="store_true", help="train a separate LM head (the embeddings stay tied)")
    parser.add_argument("--train-scenes", type=int, default=1000, help="training scenes (the recipe has 4000)")
    parser.add_argument("--held-out", action="store_true", help="evaluate on the recipe's test split")
    parser.add_argument("--output", default=None, help="write the curve as JSON here")
    args = parser.parse_args(argv)
    if min(args.steps, args.eval_every, args.eval_size, args.batch_size) < 1 or args.curriculum_steps < 0:
        parser.error("--steps, --eval-every, --eval-size and --batch-size must be >= 1, --curriculum-steps >= 0")
    torch.set_num_threads(args.threads)
    report = run(args.families, args.layout, args.learning_rate, args.steps, args.eval_every,
                 curriculum_steps=args.curriculum_steps, eval_size=args.eval_size, model_overrides=args.model,
                 batch_size=args.batch_size, cosine=args.cosine, beta2=args.beta2,
                 max_grad_norm=args.max_grad_norm, untie=args.untie, train_scenes=args.train_scenes,
                 held_out=args.held_out)
    return finish_report(report, "taichi_llm_learnability.py", argv, args.output, echo=False)


if __name__ == "__main__":
    raise SystemExit(main())
