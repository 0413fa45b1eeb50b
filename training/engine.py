"""The training engine every model family runs on: accelerate prepare / backward / step, optimizer groups, step
budgets, `save_state`/`load_state` with the resume checks, progress bars, and the DDP close.

A family contributes a [`FamilyStages`] subclass (its stage names, what each stage trains, its batches, its
objectives, how it saves a checkpoint); the recipe names the family (`"family": "tokcom"`, the default) and the
registry (`tokcom.registry`) says where its stages live.

    tokcom train --recipe RECIPE --output-dir DIR [--stages ...] [--resume] [--init-model PATH] [--max-steps N]
    accelerate launch -m tokcom.training.train --recipe RECIPE --output-dir DIR     (same, any number of processes)

Every step's batch is drawn from `numpy.random.default_rng([seed, stage index, step])` (see
`FamilyStages.step_rng`), so a run resumed from `save_state` continues exactly where it stopped, and all ranks agree
on what is random per batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import gather_object, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from tokcom.files import check_writable_folder, staged_directory

PROGRESS_FILE = "progress.json"
RECIPE_FILE = "tokcom_recipe.json"  # every checkpoint carries the recipe that trained it


def training_seed(recipe: dict) -> int:
    """Seed of initialization, batches and channel draws: `training_seed`, else `seed` (which also fixes the data)."""
    return int(recipe.get("training_seed", recipe.get("seed", 0)))


def make_accelerator(find_unused_parameters: bool = False) -> Accelerator:
    """One process's accelerator: the GPU when there is one, else the CPU (and always with ACCELERATE_USE_CPU).
    `find_unused_parameters`: DDP tolerates trained parameters that a step does not reach (e.g. a text-only task's
    step in a multitask stage that also trains the vision side)."""
    from accelerate.utils import DistributedDataParallelKwargs

    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else None
    return Accelerator(cpu=not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU") == "true",
                       kwargs_handlers=handlers)  # fmt: skip


class FamilyStages:
    """What a model family gives the engine. Subclasses set `stages` and implement the methods below.

    Attributes:
        recipe (`dict`): the whole recipe. model (`PreTrainedModel`): what is trained and saved.
        processor: saved beside the model. data: whatever the family's batches are drawn from.
    """

    stages: tuple[str, ...] = ()
    stage_keys: tuple[str, ...] = ()  # the family's own stage settings (beside the engine's common ones)
    data_keys: tuple[str, ...] = ()  # the keys of the recipe's `data` section
    find_unused_parameters: bool = False  # True when a step may leave some trained parameters without a gradient

    @classmethod
    def model_keys(cls) -> tuple[str, ...]:
        """The keys the recipe's `model` section may set (the family config's fields)."""
        return ()

    def __init__(self, recipe: dict, model, processor, data, output_dir):
        self.recipe = recipe
        self.model = model
        self.processor = processor
        self.data = data
        self.output_dir = Path(output_dir)
        self.seed = training_seed(recipe)
        self.channel = recipe.get("channel", {})

    # ---- what a family implements
    @classmethod
    def setup(cls, recipe: dict, start_from: str | Path | None, output_dir: Path) -> FamilyStages:
        """Build the model (fresh from the recipe, or loaded from `start_from`), the processor and the data."""
        raise NotImplementedError

    def objective(self, stage: str) -> torch.nn.Module:
        """An `nn.Module` whose `forward(**batch)` returns the stage's scalar loss; parameters of its own whose
        names start with `head` are trained too (e.g. a pretraining head)."""
        raise NotImplementedError

    def trainable_parameters(self, stage: str, stage_recipe: dict) -> list[str]:
        """Names (in `model.named_parameters()`) that `stage` updates; the rest are frozen for the stage."""
        raise NotImplementedError

    def parameter_groups(self, stage: str, stage_recipe: dict) -> dict[str, tuple[tuple[str, ...], float]]:
        """Optimizer groups with their own learning rate: `{group: (name prefixes, learning rate)}`."""
        return {}

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """The keyword arguments of `objective(stage)` for `step` on `rank` of `world` processes."""
        raise NotImplementedError

    def save_checkpoint(self, folder: Path) -> None:
        """Write the model and processor (Hub format) into `folder`."""
        raise NotImplementedError

    @staticmethod
    def validate_stage(stage: str, settings: dict) -> None:
        """Raise `ValueError` for the family's own stage keys."""

    @staticmethod
    def validate_data(data: dict) -> None:
        """Raise `ValueError` for the recipe's `data` section."""

    # ---- shared helpers for families
    def step_rng(self, stage: str, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stages.index(stage), step])

    def draw_snr_db(self, rng: np.random.Generator, links, size: int) -> dict[str, torch.Tensor]:
        """`(size,)` SNRs [dB] per link, uniform in the recipe's `channel.snr_db_range` (drawn in `links` order)."""
        low, high = self.channel.get("snr_db_range", [-5.0, 25.0])
        return {link: torch.from_numpy(rng.uniform(low, high, size).astype(np.float32)) for link in links}

    @staticmethod
    def draw_task(rng: np.random.Generator, weights: dict[str, float]) -> str:
        """One task of `weights` (`{task: weight}`), with probability proportional to its weight (names sorted, so
        every rank and a resumed run draw the same)."""
        tasks = sorted(weights)
        return tasks[int(rng.choice(len(tasks), p=np.array([weights[t] for t in tasks]) / sum(weights.values())))]

    @staticmethod
    def check_task_weights(stage: str, tasks, allowed: tuple[str, ...]) -> None:
        """Raise `ValueError` unless a stage's `tasks` is absent or maps some of `allowed` to numbers >= 0 with a
        positive sum."""
        if tasks is None:
            return
        weights = list(tasks.values()) if isinstance(tasks, dict) else []
        bad_weight = any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights)
        if not weights or bad_weight or set(tasks) - set(allowed) or not sum(weights) > 0:
            raise ValueError(f"Recipe field `stages.{stage}.tasks` must map some of {allowed} to weights >= 0 with a "
                             f"positive sum, got {tasks!r}.")  # fmt: skip

    def draw_channel_type(self, rng: np.random.Generator) -> str:
        """One of the recipe's `channel.channel_types` (default AWGN) for a batch."""
        channel_types = self.channel.get("channel_types", ["awgn"])
        return channel_types[int(rng.integers(len(channel_types)))]


class StageLoop:
    """Runs one stage of a family's `FamilyStages` with accelerate, within an optional step budget."""

    def __init__(self, family: FamilyStages, step_budget: int | None = None):
        self.family = family
        self.step_budget = step_budget  # optimization steps left in this invocation (None: unlimited)

    def run(self, stage: str, resume: bool) -> dict:
        """Optimize one stage; `log["finished"]` is False if the step budget ran out (state saved to resume)."""
        family, model = self.family, self.family.model
        stage_recipe = family.recipe["stages"][stage]
        steps = int(stage_recipe.get("steps", 0))
        log = {"stage": stage, "steps": steps, "losses": [], "finished": True}
        if steps <= 0:
            return log
        accelerator = make_accelerator(family.find_unused_parameters)
        objective = family.objective(stage)
        names = set(family.trainable_parameters(stage, stage_recipe))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in names)
        # 1. optimizer groups: the main rate, the family's own groups, the objective's heads with the main group
        extra = family.parameter_groups(stage, stage_recipe)
        groups = {"main": [], **{group: [] for group in extra}}
        for name, parameter in model.named_parameters():
            if name in names:
                group = next((g for g, (prefixes, _) in extra.items() if name.startswith(prefixes)), "main")
                groups[group].append(parameter)
        groups["main"] += [p for n, p in objective.named_parameters() if n.startswith("head")]
        params = [p for group in groups.values() for p in group]
        param_groups = [{"params": groups["main"]}]
        param_groups += [{"params": groups[g], "lr": rate} for g, (_, rate) in extra.items() if groups[g]]
        optimizer = torch.optim.AdamW(
            param_groups, lr=float(stage_recipe["learning_rate"]), weight_decay=float(stage_recipe.get("weight_decay", 0.0))
        )
        warmup = int(stage_recipe.get("warmup_steps", max(1, steps // 20)))
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, steps)
        objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)
        # 2. resume from the stage's saved state
        state_dir = family.output_dir / "state" / stage
        start, resumed_running = 0, []
        if resume:
            restored = load_latest_state(accelerator, state_dir)
            if restored is not None:
                start, log["losses"] = restored["step"], restored.get("losses", [])
                resumed_running = restored.get("running", [])
        checkpoint_every = int(stage_recipe.get("checkpoint_every", max(steps // 4, 1)))
        objective.train()
        freeze_normalization_statistics(model)
        bar = tqdm(range(start, steps), desc=stage, disable=not accelerator.is_main_process, initial=start, total=steps)
        running, began = list(resumed_running), time.time()  # losses since the last logged mean
        # 3. the loop: batch -> loss -> backward -> clip -> step
        for step in bar:
            if self.step_budget is not None and self.step_budget <= 0:
                save_state_atomically(accelerator, state_dir, step, log["losses"], running)
                log["finished"] = False
                break
            if self.step_budget is not None:
                self.step_budget -= 1
            batch = family.batch(stage, step, stage_recipe, accelerator.process_index, accelerator.num_processes)
            batch = _to_device(batch, accelerator.device)
            loss = objective(**batch)
            if not torch.isfinite(loss.detach()):  # a diverged run must not be saved as a result
                raise FloatingPointError(
                    f"Stage {stage!r} diverged at step {step + 1}: the loss is {loss.item()}. Nothing of this stage "
                    "was saved as final; lower `learning_rate` (or `max_grad_norm`) in the recipe and resume."
                )
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
                save_state_atomically(accelerator, state_dir, step + 1, log["losses"], running)
        bar.close()
        broken = [name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()]
        if broken:
            raise FloatingPointError(
                f"Stage {stage!r} left {len(broken)} non-finite parameter tensor(s) (e.g. {broken[0]}); nothing was "
                "saved as final. Lower `learning_rate` (or `max_grad_norm`) in the recipe."
            )
        log["seconds"] = time.time() - began
        log["num_processes"] = accelerator.num_processes
        accelerator.wait_for_everyone()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return log


def freeze_normalization_statistics(model: torch.nn.Module) -> list[str]:
    """Put every batch-norm layer whose parameters this stage does not train in eval mode (after `.train()`), so a
    frozen CNN (TaiChi's tiny ResNet V_h) stays frozen: it normalizes with its saved running statistics and does
    not update them. Returns the names of those layers.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    >>> _ = net[1].requires_grad_(False)
    >>> freeze_normalization_statistics(net), net[1].training
    (['1'], False)
    """
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))  # none when affine=False: left as it is
            if parameters and not any(parameter.requires_grad for parameter in parameters):
                module.eval()
                frozen.append(name)
    return frozen


STATE_MANIFEST = "step.json"  # inside each checkpoint folder: step, losses so far, and every file's size and digest
KEEP_CHECKPOINTS = 2


def _file_digests(folder: Path) -> dict[str, list]:
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != STATE_MANIFEST:
            digests[str(path.relative_to(folder))] = [path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()]
    return digests


def _complete(folder: Path) -> dict | None:
    """The manifest of a checkpoint folder whose files all match it, else None (missing, truncated, altered)."""
    try:
        manifest = json.loads((folder / STATE_MANIFEST).read_text())
        return manifest if manifest.get("files") == _file_digests(folder) else None
    except (OSError, ValueError):
        return None


def save_state_atomically(accelerator: Accelerator, state_dir: Path, step: int, losses: list, running: list) -> None:
    """`accelerator.save_state` into a new folder `step-<N>` that appears only once complete: written as
    `step-<N>.partial`, given a manifest (step, the logged losses and those since the last log, every file's size
    and SHA-256), then renamed.
    The newest `KEEP_CHECKPOINTS` complete folders are kept, so a kill at any instant leaves one to resume from."""
    final = state_dir / f"step-{step:08d}"
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            manifest = {"step": step, "losses": losses, "running": running, "files": _file_digests(partial)}
            write_json(partial / STATE_MANIFEST, manifest)
    except BaseException:  # e.g. a full disk: the previous complete state stays the newest, no partial is left
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)  # the switch: one rename on the same file system
        for old in sorted(state_dir.glob("step-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_latest_state(accelerator: Accelerator, state_dir: Path) -> dict | None:
    """Restore the newest complete checkpoint of `state_dir` (a damaged newer one is skipped, with a warning);
    returns its manifest, or None when there is none."""
    import warnings

    for folder in sorted(state_dir.glob("step-*[0-9]"), reverse=True):
        manifest = _complete(folder)
        if manifest is None:
            warnings.warn(f"Skipping the incomplete or damaged training state {folder}; resuming from an older one.")
            continue
        accelerator.load_state(str(folder))
        return manifest
    return None


def _to_device(value, device):
    """Tensors (also inside dicts and `Link`s) moved to `device`; everything else unchanged."""
    from dataclasses import is_dataclass, replace

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{k: _to_device(v, device) for k, v in vars(value).items() if isinstance(v, torch.Tensor)})
    return value


def family_stages(recipe: dict) -> type[FamilyStages]:
    """The `FamilyStages` class of the recipe's `family` (default `"tokcom"`), from the registry."""
    import importlib

    from tokcom.registry import family

    module = importlib.import_module(family(recipe.get("family", "tokcom")).stages_module)
    classes = [value for value in vars(module).values() if isinstance(value, type) and issubclass(value, FamilyStages)
               and value is not FamilyStages and value.__module__ == module.__name__]  # fmt: skip
    if len(classes) != 1:
        raise ValueError(f"{module.__name__} must define exactly one FamilyStages subclass, found {len(classes)}.")
    return classes[0]


def train(
    recipe: dict,
    output_dir: str | os.PathLike,
    stages=None,
    resume: bool = False,
    init_model: str | None = None,
    max_steps: int | None = None,
) -> Path | None:
    """Run `stages` (default: every stage the recipe lists, in the family's order) of `recipe`; writes `<output_dir>/model` (weights, config,
    processor, recipe), `training_log.json`, and a snapshot after each finished stage in `<output_dir>/stages/<stage>`.

    Stages already recorded as done in `<output_dir>/progress.json` are skipped when `resume=True`, and a stage
    that was stopped continues from its saved accelerate state; a resumed run continues from its own work folder
    (`init_model` only seeds a fresh run) and refuses another recipe or `init_model`. `max_steps` bounds the
    optimization steps of this invocation (for time-boxed jobs): when it runs out, the state is saved and `None`
    is returned.
    """
    from tokcom.training.recipe import validate_recipe

    validate_recipe(recipe)
    stages_class = family_stages(recipe)
    listed = [stage for stage in stages_class.stages if stage in recipe["stages"]]  # the family's order
    stages = listed if stages is None else list(stages)
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
        raise ValueError(f"`max_steps` must be an integer >= 0, got {max_steps!r}.")
    unknown = [s for s in stages if s not in listed]
    if unknown:
        raise ValueError(f"`stages` must be among the recipe's stages {listed}, got {unknown}.")
    output_dir = check_writable_folder(output_dir, "output_dir")  # before anything trains
    set_seed(training_seed(recipe))
    torch.set_num_threads(int(recipe.get("num_threads", torch.get_num_threads())))
    # 1. resume checks: same recipe, same starting checkpoint
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
    # 2. the family builds its model, processor and data; a resumed run continues from its own work folder
    family = stages_class.setup(recipe, work_dir if resuming else init_model, output_dir)
    loop = StageLoop(family, step_budget=max_steps)
    is_main = int(os.environ.get("RANK", "0")) == 0

    def save_checkpoint(folder: Path) -> None:
        # written whole or not at all (a full disk leaves the previous folder); the recipe rides along: its data
        # seeds define the held-out split, and resuming checks it
        with staged_directory(folder, overwrite=True) as staging:
            family.save_checkpoint(staging)
            write_json(staging / RECIPE_FILE, recipe)

    # 3. the stages
    for stage in stages:
        if stage in progress["done"]:
            continue
        log = loop.run(stage, resume)
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
            write_json(progress_path, progress)
    # 4. every rank reports a digest of its parameters: after DDP training they must all be identical
    accelerator = make_accelerator()
    digests = gather_object([parameter_digest(family.model)])
    final = output_dir / "model"
    if is_main:
        save_checkpoint(final)
        write_json(
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


def write_json(path: Path, payload) -> None:
    """Write JSON through a temporary sibling and `os.replace`, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def close_distributed() -> None:
    """Call once before a (possibly) multi-process training script exits. A rank that exits while another still
    writes files tears the live gloo group down under it and aborts ("terminate called without an active
    exception"), so the ranks meet, then close the group. A no-op in a single process."""
    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


__all__ = [
    "FamilyStages",
    "PROGRESS_FILE",
    "RECIPE_FILE",
    "StageLoop",
    "close_distributed",
    "load_latest_state",
    "save_state_atomically",
    "family_stages",
    "make_accelerator",
    "parameter_digest",
    "train",
    "training_seed",
    "write_json",
]
