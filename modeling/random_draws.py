"""Random draws on the generator's device, moved to where they are used.

A `torch.Generator` lives on one device, and `torch.randn(..., generator=g, device=d)` fails when `d` is another
(the training engine passes CPU generators, which keep resume exact, to models that may sit on a GPU). Every
stochastic piece of the models (channel noise and fading, diffusion noise and timesteps, sigma-GenIB sampling,
Griffin-Lim phases, sampled answer tokens) draws through these, so a CPU generator gives the same numbers whatever the model's device.

>>> g = torch.Generator().manual_seed(0)
>>> randn((2, 3), g, "cpu").shape, randint(0, 5, (4,), g, "cpu").dtype
(torch.Size([2, 3]), torch.int64)
"""

from __future__ import annotations

import torch

__all__ = ["multinomial", "rand", "randint", "randn"]


def _source(generator: torch.Generator | None, device) -> torch.device | str | None:
    return device if generator is None else generator.device


def randn(shape, generator: torch.Generator | None, device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`torch.randn(shape)` from `generator` (drawn on its device), returned on `device`."""
    return torch.randn(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def rand(shape, generator: torch.Generator | None, device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`torch.rand(shape)` from `generator` (drawn on its device), returned on `device`."""
    return torch.rand(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def randint(low: int, high: int, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """`torch.randint(low, high, shape)` from `generator` (drawn on its device), returned on `device`."""
    return torch.randint(low, high, shape, generator=generator, device=_source(generator, device)).to(device)


def multinomial(probabilities: torch.Tensor, num_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """`torch.multinomial(probabilities, num_samples)` from `generator` (drawn on its device), returned on the
    device of `probabilities`."""
    source = _source(generator, probabilities.device)
    return torch.multinomial(probabilities.to(source), num_samples, generator=generator).to(probabilities.device)
