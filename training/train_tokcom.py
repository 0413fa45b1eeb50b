"""Train TokComForAVQA with accelerate: unimodal pretraining, cross-modal alignment, task fine-tuning.

    accelerate launch -m tokcom.training.train_tokcom --recipe RECIPE.json --output-dir DIR [--stages ...] [--resume]
    tokcom train --recipe RECIPE.json --output-dir DIR            (same, in one process)

On CPU, a real 2-process run needs `--multi_gpu` and `ACCELERATE_USE_CPU=true` (see README):

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m tokcom.training.train_tokcom --recipe R.json --output-dir D

Every step draws its batch, SNRs and token lengths from `numpy.random.default_rng([seed, stage, step])`, so a
run resumed from `save_state` continues exactly where it stopped, and all ranks agree on lengths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import gather_object, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from tokcom.modeling import TokComConfig, TokComForAVQA
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.training.avqa_tensors import AVQATensors
from tokcom.training.evaluate_tokcom import RECIPE_FILE
from tokcom.training.objectives import (
    Alignment,
    AudioPretraining,
    TaskFineTuning,
    TextPretraining,
    VisionPretraining,
)
from tokcom.training.recipe import STAGES, load_recipe
from tokcom.training.synthetic_corpus import build_synthetic_corpus

PROGRESS_FILE = "progress.json"
TRANSCEIVERS = ("visual_projector", "audio_projector", "receivers")  # F_m and G_m


def training_seed(recipe: dict) -> int:
    """Seed of initialization, batches and channel draws: `training_seed`, else `seed` (which also fixes the data)."""
    return int(recipe.get("training_seed", recipe.get("seed", 0)))


def _links_snr(rng: np.random.Generator, snr_range, size: int) -> dict[str, torch.Tensor]:
    low, high = snr_range
    return {link: torch.from_numpy(rng.uniform(low, high, size).astype(np.float32)) for link in ("visual", "audio", "text")}


def trainable_parameters(model: TokComForAVQA, stage: str, stage_recipe: dict) -> list[str]:
    """Names of the parameters a stage updates (everything else is frozen for that stage)."""
    names = []
    for name, _ in model.named_parameters():
        if stage == "pretrain_vision":
            keep = name.startswith("vision_encoder")
        elif stage == "pretrain_audio":
            keep = name.startswith("audio_encoder")
        elif stage == "pretrain_text":
            keep = name.startswith("language_model") and "lora_" not in name
        elif stage == "align":  # Sec. III-A: only F_m and G_m
            keep = name.startswith(TRANSCEIVERS)
        else:  # Sec. III-B: LoRA and all transceivers (encoders optional; transceivers frozen at learning rate 0)
            moving = float(stage_recipe.get("transceiver_learning_rate", 1.0)) > 0
            keep = (moving and name.startswith(TRANSCEIVERS)) or "lora_" in name
            if stage_recipe.get("train_encoders", False):
                keep = keep or name.startswith(("vision_encoder", "audio_encoder"))
        if keep:
            names.append(name)
    return names


class StageRunner:
    """Builds the objective and batches for one stage and runs its optimization loop."""

    def __init__(self, recipe: dict, model: TokComForAVQA, processor: TokComProcessor, corpus: AVQATensors, output_dir: Path):
        self.recipe = recipe
        self.model = model
        self.processor = processor
        self.corpus = corpus
        self.output_dir = output_dir
        self.seed = training_seed(recipe)
        self.channel = recipe.get("channel", {})
        self.step_budget: int | None = None  # optimization steps left in this invocation (None: unlimited)

    def objective(self, stage: str) -> torch.nn.Module:
        return {
            "pretrain_vision": VisionPretraining,
            "pretrain_audio": AudioPretraining,
            "pretrain_text": TextPretraining,
            "align": Alignment,
            "task": TaskFineTuning,
        }[stage](self.model)

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """The batch of `step` for `rank`: a slice of one global batch drawn from a per-step generator."""
        rng = np.random.default_rng([self.seed, STAGES.index(stage), step])
        per_rank = int(stage_recipe["batch_size"])
        total = per_rank * world
        corpus, processor = self.corpus, self.processor
        population = corpus.num_questions if stage in ("task", "pretrain_text", "align") else corpus.num_scenes
        picks = torch.from_numpy(rng.choice(population, total, replace=population < total))
        mine = picks[rank * per_rank : (rank + 1) * per_rank]
        config = self.model.config
        if stage in ("pretrain_vision", "pretrain_audio"):
            targets = {k: v[mine] for k, v in corpus.scene_targets.items()}
            maximum = config.max_visual_tokens if stage == "pretrain_vision" else config.max_audio_tokens
            num_tokens = int(rng.integers(1, maximum + 1))
            if stage == "pretrain_vision":
                return {"pixel_values_videos": corpus.video_batch(processor, mine), "instruments": targets["instruments"],
                        "intervals": targets["intervals"], "num_tokens": num_tokens}  # fmt: skip
            return {"input_values": corpus.input_values[mine], **targets, "num_tokens": num_tokens}
        if stage == "pretrain_text":
            num_tokens = None
            if corpus.modal_caption_ids is not None:  # the caption stands exactly where the media tokens will
                lengths = self._token_lengths(rng, stage_recipe)
                num_tokens = {m: self.model.received_length(m, lengths[m]) for m in config.prompt_order if m != "text"}
            return corpus.text_stage_batch(processor, mine, num_tokens)
        # align / task: per-sample SNR per link, per-batch token lengths, a channel type per batch
        if stage == "align":  # each picked question's scene: media, caption, and the question (eq. 9 needs its words)
            batch = corpus.caption_batch(processor, corpus.scene_index[mine], questions=mine)
        else:
            batch = corpus.question_batch(processor, mine)
        snr = _links_snr(rng, self.channel.get("snr_db_range", [-5.0, 25.0]), total)
        batch["snr_db"] = {link: values[rank * per_rank : (rank + 1) * per_rank] for link, values in snr.items()}
        lengths = self._token_lengths(rng, stage_recipe)
        batch.update({f"num_{m}_tokens": count for m, count in lengths.items()})
        channel_types = self.channel.get("channel_types", ["awgn"])
        batch["channel_type"] = channel_types[int(rng.integers(len(channel_types)))]
        batch["generator"] = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        if stage == "align" and corpus.modal_caption_ids is not None:  # token-level alignment targets
            targets = corpus.modal_captions(corpus.scene_index[mine], lengths)
            batch.update({f"{m}_target_ids": ids for m, ids in targets.items()})
        return batch

    def _token_lengths(self, rng: np.random.Generator, stage_recipe: dict) -> dict[str, int]:
        """`{"visual": s_v, "audio": s_a}` (drawn in that order): per batch with `random_token_lengths`, else the
        stage's `num_<modality>_tokens` (default: the maximum).

        With `random_token_lengths`, `full_length_fraction` f sends a share f of the batches at the maximum lengths
        (one coin per batch, drawn only when f is set) and draws the rest uniformly in [1, max]. Questions that need
        a whole description (e.g. which instrument sounds first) are answerable only from full-length batches.
        """
        config = self.model.config
        lengths = {}
        randomized = stage_recipe.get("random_token_lengths", False)
        fraction = stage_recipe.get("full_length_fraction")
        full = randomized and fraction is not None and rng.random() < float(fraction)
        for modality in ("visual", "audio"):
            if full:
                lengths[modality] = config.max_tokens(modality)
            elif randomized:
                lengths[modality] = int(rng.integers(1, config.max_tokens(modality) + 1))
            else:
                lengths[modality] = stage_recipe.get(f"num_{modality}_tokens") or config.max_tokens(modality)
        return lengths

    def run(self, stage: str, resume: bool) -> dict:
        """Optimize one stage; `log["finished"]` is False if the step budget ran out (state saved to resume)."""
        stage_recipe = self.recipe["stages"][stage]
        steps = int(stage_recipe.get("steps", 0))
        log = {"stage": stage, "steps": steps, "losses": [], "finished": True}
        if steps <= 0:
            return log
        accelerator = Accelerator(cpu=not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU") == "true")
        objective = self.objective(stage)
        names = set(trainable_parameters(self.model, stage, stage_recipe))
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(name in names)
        head_params = [p for n, p in objective.named_parameters() if n.startswith("head")]
        transceiver_lr = stage_recipe.get("transceiver_learning_rate")  # F_m, G_m at their own rate (task stage)
        groups = {"main": [], "transceivers": []}
        for name, parameter in self.model.named_parameters():
            if name in names:
                slow = transceiver_lr is not None and name.startswith(TRANSCEIVERS)
                groups["transceivers" if slow else "main"].append(parameter)
        groups["main"] += head_params
        params = groups["main"] + groups["transceivers"]
        param_groups = [{"params": groups["main"]}]
        if groups["transceivers"]:
            param_groups.append({"params": groups["transceivers"], "lr": float(transceiver_lr)})
        optimizer = torch.optim.AdamW(param_groups, lr=float(stage_recipe["learning_rate"]), weight_decay=float(stage_recipe.get("weight_decay", 0.0)))
        warmup = int(stage_recipe.get("warmup_steps", max(1, steps // 20)))
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, steps)
        objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)
        state_dir = self.output_dir / "state" / stage
        start = 0
        if resume and (state_dir / "step.json").exists():
            accelerator.load_state(str(state_dir))
            start = json.loads((state_dir / "step.json").read_text())["step"]
        checkpoint_every = int(stage_recipe.get("checkpoint_every", max(steps // 4, 1)))
        objective.train()
        bar = tqdm(range(start, steps), desc=stage, disable=not accelerator.is_main_process, initial=start, total=steps)
        running, began = [], time.time()
        for step in bar:
            if self.step_budget is not None and self.step_budget <= 0:
                self._save_state(accelerator, state_dir, step)
                log["finished"] = False
                break
            if self.step_budget is not None:
                self.step_budget -= 1
            batch = self.batch(stage, step, stage_recipe, accelerator.process_index, accelerator.num_processes)
            batch = {k: v.to(accelerator.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            loss = objective(**batch)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, float(stage_recipe.get("max_grad_norm", 1.0)))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running.append(loss.item())
            if (step + 1) % 50 == 0 or step + 1 == steps:
                mean = float(np.mean(running))
                log["losses"].append({"step": step + 1, "loss": mean})
                bar.set_postfix(loss=f"{mean:.4f}")
                running = []
            if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                self._save_state(accelerator, state_dir, step + 1)
        bar.close()
        log["seconds"] = time.time() - began
        log["num_processes"] = accelerator.num_processes
        accelerator.wait_for_everyone()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        return log


    @staticmethod
    def _save_state(accelerator: Accelerator, state_dir: Path, step: int) -> None:
        accelerator.save_state(str(state_dir))
        if accelerator.is_main_process:
            (state_dir / "step.json").write_text(json.dumps({"step": step}))
        accelerator.wait_for_everyone()


def train(
    recipe: dict,
    output_dir: str | os.PathLike,
    stages=STAGES,
    resume: bool = False,
    init_model: str | None = None,
    max_steps: int | None = None,
) -> Path | None:
    """Run `stages` of `recipe`; writes `<output_dir>/model` (weights, config, processor), `training_log.json`, and
    a snapshot after each finished stage in `<output_dir>/stages/<stage>`.

    Stages already recorded as done in `<output_dir>/progress.json` are skipped when `resume=True`, and a stage
    that was stopped continues from its saved accelerate state. `max_steps` bounds the optimization steps of this
    invocation (for time-boxed jobs): when it runs out, the state is saved and `None` is returned.
    """
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"`max_steps` must be >= 0, got {max_steps}.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"`stages` must be among {STAGES}, got {unknown}.")
    set_seed(training_seed(recipe))
    torch.set_num_threads(int(recipe.get("num_threads", torch.get_num_threads())))
    progress_path = output_dir / PROGRESS_FILE
    progress = json.loads(progress_path.read_text()) if resume and progress_path.exists() else {"done": [], "logs": []}
    seeded_by = str(Path(init_model).resolve()) if init_model else None
    progress.setdefault("init_model", seeded_by)
    if init_model is not None and progress["init_model"] != seeded_by:
        raise ValueError(
            f"`init_model` {seeded_by} differs from {progress['init_model']}, which {output_dir} started from; "
            "resume with that one, or train into another `output_dir`."
        )
    work_dir = output_dir / "work"
    resuming = resume and (work_dir / "config.json").exists()
    recorded = json.loads((work_dir / RECIPE_FILE).read_text()) if resuming and (work_dir / RECIPE_FILE).exists() else None
    if recorded is not None and recorded != json.loads(json.dumps(recipe)):  # as stored: tuples become lists
        raise ValueError(
            f"`recipe` differs from the one {output_dir} was trained with ({work_dir / RECIPE_FILE}); resume with "
            "that recipe, or train the new one into another `output_dir`."
        )
    # a resumed run continues from its own work folder; `init_model` only seeds a fresh run
    start_from = work_dir if resuming else init_model
    processor = TokComProcessor.from_pretrained(start_from) if start_from else None
    corpus, processor = build_synthetic_corpus(recipe, split="train", processor=processor)
    if start_from:
        model = TokComForAVQA.from_pretrained(start_from)
    else:
        config = TokComConfig.tiny(**recipe.get("model", {}))
        config.text_config.vocab_size = max(config.text_config.vocab_size, len(processor.tokenizer))
        model = TokComForAVQA(config)
    runner = StageRunner(recipe, model, processor, corpus, output_dir)
    runner.step_budget = max_steps
    is_main = int(os.environ.get("RANK", "0")) == 0

    def save_checkpoint(folder: Path) -> None:
        # every checkpoint carries the recipe: its data seeds define the held-out split, and its caption style
        # what `text_ceiling`/`evaluate` read; resuming checks it
        runner.model.save_pretrained(folder)
        processor.save_pretrained(folder)
        _write_json(folder / RECIPE_FILE, recipe)

    for stage in stages:
        if stage in progress["done"]:
            continue
        log = runner.run(stage, resume)
        if not log["finished"]:
            if is_main:
                save_checkpoint(work_dir)
            return None
        progress["done"].append(stage)
        progress["logs"].append(log)
        if is_main:
            # the work folder, and a snapshot per finished stage (e.g. to start ablations from the pretrained model)
            for folder in (work_dir, output_dir / "stages" / stage):
                save_checkpoint(folder)
            _write_json(progress_path, progress)
    # every rank reports a digest of its parameters: after DDP training they must all be identical
    accelerator = Accelerator(cpu=not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU") == "true")
    digests = gather_object([parameter_digest(runner.model)])
    final = output_dir / "model"
    if is_main:
        save_checkpoint(final)
        _write_json(
            output_dir / "training_log.json",
            {"recipe": recipe, "num_processes": accelerator.num_processes, "rank_parameter_digests": digests, "stages": progress["logs"]},
        )
    accelerator.wait_for_everyone()  # every rank returns only once the final checkpoint is on disk
    return final


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in name order (identical models give identical digests)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _write_json(path: Path, payload) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True, help="recipe JSON (see training/recipes/)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--resume", action="store_true", help="continue from progress.json and saved states")
    parser.add_argument("--init-model", help="start from this checkpoint instead of a fresh tiny model")
    parser.add_argument("--max-steps", type=int, help="stop (resumably) after this many optimization steps")
    args = parser.parse_args(argv)
    train(load_recipe(args.recipe), args.output_dir, args.stages, args.resume, args.init_model, args.max_steps)
    close_distributed()
    return 0


def close_distributed() -> None:
    """Call once before a (possibly) multi-process training script exits. A rank that exits while another still
    writes files tears the live gloo group down under it and aborts ("terminate called without an active
    exception"), so the ranks meet, then close the group. A no-op in a single process."""
    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
