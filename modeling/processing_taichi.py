"""TaiChiProcessor: images, task instructions, queries and answers -> TaiChiForConditionalGeneration inputs.

Instruction templates (Sec. V-A-2 of `taichi-vlm-tokencom.txt`, shortened to what the tiny vocabulary holds): each
task's instruction is put before the user's input, and the answer is the response the loss is computed on.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature, PreTrainedTokenizerFast, ProcessorMixin

from .configuration_taichi import TASKS
from .decoding import answer_labels
from .media_io import load_image

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
_INIT_KEYS = ("hr_image_size", "lr_image_size", "image_mean", "image_std", "instructions")

# "{text}" is the user's input (the question, or the sentence to classify)
DEFAULT_INSTRUCTIONS = {
    "vqa": "observe the image and answer the question about it with one word . question : {text}",
    "caption": "describe the objects in the image : their size , color , material and shape .",
    "sentiment": "is the following sentence positive or negative ? sentence : {text}",
}
IMAGE_TASKS = ("vqa", "caption")
# images up to this many pixels are stacked and resized as one float batch; larger ones one at a time (a batch of
# four 4096 x 4096 images as one float tensor took 1.3 GB more)
BATCHED_RESIZE_MAX_PIXELS = 512 * 512


class TaiChiProcessor(ProcessorMixin):
    r"""Prepares [`TaiChiForConditionalGeneration`]'s inputs for one task.

    - images (file paths, PIL images or uint8 `(H, W, 3)` arrays) -> `pixel_values` `(batch, 3, hr, hr)` (I) and
      `pixel_values_lr` `(batch, 3, lr, lr)` (I'), resized with antialiasing, scaled to `[0, 1]`, then
      `(x - image_mean) / image_std`;
    - the task's instruction with the user's `text` -> `input_ids`, `attention_mask` (left-padded);
    - `answers` -> `labels` (ids + eos, right-padded with -100).

    Example:

    >>> import numpy as np
    >>> from tokcom.training.tokenization import build_word_tokenizer
    >>> tokenizer = build_word_tokenizer(list(DEFAULT_INSTRUCTIONS.values()) + ["is there a cube", "yes"])
    >>> processor = TaiChiProcessor(tokenizer, hr_image_size=64, lr_image_size=32)
    >>> batch = processor(task="vqa", images=[np.zeros((128, 128, 3), np.uint8)], text=["is there a cube ?"],
    ...                   answers=["yes"])
    >>> tuple(batch["pixel_values"].shape), tuple(batch["pixel_values_lr"].shape), batch["labels"].shape[1]
    ((1, 3, 64, 64), (1, 3, 32, 32), 2)
    """

    def __init__(self, tokenizer=None, hr_image_size: int = 64, lr_image_size: int = 32, image_mean: float = 0.5,
                 image_std: float = 0.5, instructions: dict | None = None):  # fmt: skip
        super().__init__(tokenizer)
        for name, value in (("hr_image_size", hr_image_size), ("lr_image_size", lr_image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        if not image_std > 0:
            raise ValueError(f"`image_std` must be > 0, got {image_std!r}.")
        instructions = dict(DEFAULT_INSTRUCTIONS if instructions is None else instructions)
        if sorted(instructions) != sorted(TASKS):
            raise ValueError(f"`instructions` must give a template for each task {TASKS}, got {sorted(instructions)}.")
        self.tokenizer.padding_side = "left"
        self.hr_image_size, self.lr_image_size = hr_image_size, lr_image_size
        self.image_mean, self.image_std = image_mean, image_std
        self.instructions = instructions

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> TaiChiProcessor:
        """Load `processor_config.json` and the tokenizer files (read as `PreTrainedTokenizerFast`, so no
        `trust_remote_code` is needed just to read a tokenizer). Hub keywords are passed on; others are ignored."""
        hub = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        processor_dict, _ = cls.get_processor_dict(pretrained_model_name_or_path, **hub)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, **hub)
        return cls(tokenizer, **{key: processor_dict[key] for key in _INIT_KEYS if key in processor_dict})

    def process_images(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> `(pixel_values (batch, 3, hr, hr), pixel_values_lr (batch, 3, lr, lr))`, normalized."""
        if isinstance(images, np.ndarray) and images.ndim == 3 or not isinstance(images, (list, tuple, np.ndarray)):
            images = [images]
        if len(images) == 0:
            raise ValueError("`images` must hold at least one image, got an empty list.")
        arrays = [load_image(image, name=f"images[{index}]") for index, image in enumerate(images)]  # bounded
        height, width = arrays[0].shape[:2]
        if len({array.shape for array in arrays}) == 1 and height * width <= BATCHED_RESIZE_MAX_PIXELS:  # one resize
            return self.image_tensors(torch.from_numpy(np.stack(arrays)))
        pairs = [self.image_tensors(torch.from_numpy(np.ascontiguousarray(array))[None]) for array in arrays]
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

    def image_tensors(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 `(batch, H, W, 3)` -> `(pixel_values, pixel_values_lr)`: resized with antialiasing, normalized."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        out = []
        for side in (self.hr_image_size, self.lr_image_size):
            resized = x if x.shape[-2:] == (side, side) else F.interpolate(
                x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)  # fmt: skip
            out.append((resized - self.image_mean) / self.image_std)
        return out[0], out[1]

    def prompts(self, task: str, text=None) -> list[str]:
        """The instruction of `task` around each user input (`text`: a string or a list; none for captions)."""
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        template = self.instructions[task]
        if "{text}" not in template:
            return [template] if text is None else [template] * len([text] if isinstance(text, str) else text)
        if text is None:
            raise ValueError(f"Task {task!r} needs `text` (its template is {template!r}).")
        items = [text] if isinstance(text, str) else list(text)
        if not items:
            raise ValueError(f"Task {task!r} needs `text`: at least one string, got an empty list.")
        return [template.format(text=item) for item in items]

    def __call__(self, task: str = "vqa", images=None, text=None, answers=None, return_tensors: str = "pt",
                 **kwargs) -> BatchFeature:  # fmt: skip
        """One task's batch: `images` (vqa, caption), `text` (vqa: questions; sentiment: sentences), `answers`."""
        if kwargs:
            raise ValueError(f"Unknown keyword argument(s) for TaiChiProcessor: {sorted(kwargs)}.")
        if return_tensors != "pt":
            raise ValueError(f"`return_tensors` must be 'pt', got {return_tensors!r}.")
        prompts = self.prompts(task, text)
        data = {}
        if task in IMAGE_TASKS:
            if images is None:
                raise ValueError(f"Task {task!r} needs `images`.")
            data["pixel_values"], data["pixel_values_lr"] = self.process_images(images)
            if len(prompts) == 1 and data["pixel_values"].shape[0] > 1:
                prompts = prompts * data["pixel_values"].shape[0]
        elif images is not None:
            raise ValueError(f"Task {task!r} is text-only; do not pass `images`.")
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt")
        data["input_ids"], data["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
        if answers is not None:
            data["labels"] = answer_labels(self.tokenizer, [answers] if isinstance(answers, str) else list(answers))
        sizes = {name: value.shape[0] for name, value in data.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"All inputs must have the same batch size, got {sizes}.")
        return BatchFeature(data=data)

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """Generated ids -> strings, special tokens removed."""
        return [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True, **kwargs)]


__all__ = ["DEFAULT_INSTRUCTIONS", "IMAGE_TASKS", "TaiChiProcessor"]
