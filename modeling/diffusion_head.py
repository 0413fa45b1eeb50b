"""Per-token diffusion head of UniToCom's latent MLLM (Sec. IV-B of `unitocom-genib.txt`, eqs. 17-19).

For each continuous token the causal MLLM gives a hidden state `h_i`; the head generates the token
`c_i = Diffusion(h_i)` (eq. 17) by reverse diffusion. It is a small MLP of residual blocks with adaptive
LayerNorm (adaLN, as in DiT and LatentLM's next-token diffusion head): every block's shift / scale / gate come
from `condition + timestep embedding`, and the head predicts the noise `epsilon` of eq. (19).

The head is plain torch. Noise schedules are `diffusers` scheduler objects passed in (duck-typed), so a model
holding this head needs diffusers only to build its schedulers, never to run the head itself.

Dimensions: `N` tokens (leading dims are flattened into `N`), `token_dim` (continuous token size, e.g. the
tokenizer's latent size), `condition_dim` (the LLM hidden size `D`).

Example:
    >>> import torch
    >>> from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
    >>> head = DiffusionHead(token_dim=2, condition_dim=8, hidden_dim=32, num_layers=2)
    >>> train_sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    >>> loss = diffusion_loss(head, train_sched, torch.randn(3, 5, 2), torch.randn(3, 5, 8))
    >>> loss.backward()
    >>> sample_sched = DPMSolverMultistepScheduler.from_config(train_sched.config, timestep_spacing="leading")
    >>> sample_tokens(head, sample_sched, torch.randn(4, 8), num_inference_steps=10).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .random_draws import randint, randn

__all__ = ["DiffusionHead", "diffusion_loss", "sample_tokens"]


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of integer diffusion steps followed by a 2-layer MLP: `(N,)` -> `(N, hidden_dim)`."""

    def __init__(self, hidden_dim: int, frequency_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.frequency_dim, self.max_period = frequency_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=timesteps.device) / half)
        args = timesteps.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class AdaLNResBlock(nn.Module):
    """`x + gate * MLP(LN(x) * (1 + scale) + shift)`; shift / scale / gate from the condition `c`."""

    def __init__(self, hidden_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        inner = int(hidden_dim * mlp_ratio)
        self.norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, inner), nn.SiLU(), nn.Linear(inner, hidden_dim))
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 3 * hidden_dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada_ln(c).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    r"""Noise predictor `epsilon_psi(c_i^r, r, h_i)` of eq. (19).

    Args:
        token_dim (`int`): size of one continuous token.
        condition_dim (`int`): size of the conditioning hidden state `h_i` (the LLM hidden size).
        hidden_dim (`int`, defaults to 256): width of the residual stream.
        num_layers (`int`, defaults to 3): number of adaLN residual blocks.
        mlp_ratio (`float`, defaults to 4.0): inner width of each block's MLP relative to `hidden_dim`.
        frequency_dim (`int`, defaults to 256): size of the sinusoidal timestep features (even).

    Initialization: the adaLN modulation layers (shift, scale and gate of every block, shift and scale of the
    output norm) and the final projection start at exactly zero (DiT's adaLN-Zero, also used by LatentLM), so
    every block starts as the identity and the head predicts `epsilon = 0` at init. Only the final projection
    receives a gradient at the very first step; the rest follows once it is non-zero.
    """

    def __init__(self, token_dim: int, condition_dim: int, hidden_dim: int = 256, num_layers: int = 3,
                 mlp_ratio: float = 4.0, frequency_dim: int = 256):
        super().__init__()
        for name, value in (("token_dim", token_dim), ("condition_dim", condition_dim),
                            ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            _check_int(name, value, 1)
        _check_int("frequency_dim", frequency_dim, 2)
        if frequency_dim % 2:
            raise ValueError(f"`frequency_dim` must be even, got {frequency_dim}")
        if not mlp_ratio > 0:
            raise ValueError(f"`mlp_ratio` must be > 0, got {mlp_ratio}")
        self.token_dim, self.condition_dim = token_dim, condition_dim
        self.input_proj = nn.Linear(token_dim, hidden_dim)
        self.condition_proj = nn.Linear(condition_dim, hidden_dim)
        self.time_embed = TimestepEmbedding(hidden_dim, frequency_dim)
        self.blocks = nn.ModuleList(AdaLNResBlock(hidden_dim, mlp_ratio) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.final_ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 2 * hidden_dim))
        self.final_proj = nn.Linear(hidden_dim, token_dim)
        # adaLN-Zero: zero modulations and output layer, so the head starts as epsilon = 0.
        for layer in [b.ada_ln[-1] for b in self.blocks] + [self.final_ada_ln[-1], self.final_proj]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, noisy_tokens: torch.Tensor, timesteps: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        r"""Predict the noise in `noisy_tokens`.

        Args:
            noisy_tokens (`torch.Tensor` of shape `(N, token_dim)`): `c_i^r`, noisy tokens (eq. 18).
            timesteps (`torch.Tensor` of shape `(N,)` or a scalar): integer diffusion steps `r`.
            conditions (`torch.Tensor` of shape `(N, condition_dim)`): hidden states `h_i`.

        Returns:
            `torch.Tensor` of shape `(N, token_dim)`: predicted noise `epsilon_psi`.
        """
        if noisy_tokens.dim() != 2 or noisy_tokens.shape[-1] != self.token_dim:
            raise ValueError(f"`noisy_tokens` must have shape (N, {self.token_dim}), got {tuple(noisy_tokens.shape)}")
        n = noisy_tokens.shape[0]
        if conditions.dim() != 2 or conditions.shape != (n, self.condition_dim):
            raise ValueError(f"`conditions` must have shape ({n}, {self.condition_dim}), got {tuple(conditions.shape)}")
        timesteps = torch.as_tensor(timesteps, device=noisy_tokens.device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(n)
        if timesteps.shape != (n,):
            raise ValueError(f"`timesteps` must have shape ({n},) or be a scalar, got {tuple(timesteps.shape)}")
        c = self.condition_proj(conditions) + self.time_embed(timesteps)  # condition + timestep embedding
        x = self.input_proj(noisy_tokens)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_ada_ln(c).chunk(2, dim=-1)
        return self.final_proj(self.final_norm(x) * (1 + scale) + shift)


def _flatten(head: DiffusionHead, conditions: torch.Tensor, tokens: torch.Tensor | None = None):
    if conditions.dim() < 2 or conditions.shape[-1] != head.condition_dim:
        raise ValueError(f"`conditions` must have shape (..., {head.condition_dim}), got {tuple(conditions.shape)}")
    if tokens is not None:
        if tokens.dim() < 2 or tokens.shape[-1] != head.token_dim:
            raise ValueError(f"`tokens` must have shape (..., {head.token_dim}), got {tuple(tokens.shape)}")
        if tokens.shape[:-1] != conditions.shape[:-1]:
            raise ValueError(f"`tokens` leading dims {tuple(tokens.shape[:-1])} must match `conditions` leading "
                             f"dims {tuple(conditions.shape[:-1])}")
        tokens = tokens.reshape(-1, head.token_dim)
    return conditions.reshape(-1, head.condition_dim), tokens


def diffusion_loss(head: DiffusionHead, scheduler, tokens: torch.Tensor, conditions: torch.Tensor,
                   num_noise_draws: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Next-token diffusion loss, eq. (19): `E ||epsilon - epsilon_psi(c_i^r, r, h_i)||^2`.

    Args:
        head (`DiffusionHead`): the noise predictor.
        scheduler: a training scheduler with `add_noise(x, noise, t)` and `config.num_train_timesteps`
            (e.g. `diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")`).
        tokens (`torch.Tensor` of shape `(..., token_dim)`): clean continuous tokens `c_i`.
        conditions (`torch.Tensor` of shape `(..., condition_dim)`): hidden states `h_i` predicting them.
        num_noise_draws (`int`, defaults to 4): noise draws per token; the head is cheap next to the LLM, so
            reusing each `h_i` several times gives more diffusion samples per LLM forward pass.
        generator (`torch.Generator`, *optional*): source of timesteps and noise.

    Returns:
        `torch.Tensor`, scalar: mean squared error over all tokens, draws and token dimensions.
    """
    _check_int("num_noise_draws", num_noise_draws, 1)
    conditions, tokens = _flatten(head, conditions, tokens)
    # 1. Repeat each (token, condition) pair once per noise draw: (N * num_noise_draws, dim).
    tokens = tokens.repeat(num_noise_draws, 1)
    conditions = conditions.repeat(num_noise_draws, 1)
    # 2. Each token its own step r ~ U{0, ..., R - 1} and its own noise epsilon ~ N(0, I).
    num_train_timesteps = int(scheduler.config.num_train_timesteps)
    timesteps = randint(0, num_train_timesteps, (tokens.shape[0],), generator, tokens.device)
    noise = randn(tokens.shape, generator, tokens.device, tokens.dtype)
    # 3. Forward process, eq. (18): c^r = sqrt(omega_r) c^0 + sqrt(1 - omega_r) epsilon.
    noisy = scheduler.add_noise(tokens, noise, timesteps)
    # 4. Noise-prediction MSE, eq. (19).
    return torch.mean((head(noisy, timesteps, conditions).float() - noise.float()) ** 2)


@torch.no_grad()
def sample_tokens(head: DiffusionHead, scheduler, conditions: torch.Tensor, num_inference_steps: int = 10,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Generate continuous tokens `c_i = Diffusion(h_i)` (eq. 17) by reverse diffusion.

    The MLLM calls this once per generated continuous token (autoregressively: the sampled `c_i` is projected
    and fed back as the next input, with the LLM's KV cache holding the prefix); `N` is then the batch size.
    The head itself has no cache: every call runs `num_inference_steps` head evaluations on `N` rows.

    Args:
        head (`DiffusionHead`): the trained noise predictor.
        scheduler: a sampling scheduler with `set_timesteps`, `timesteps`, `init_noise_sigma` and
            `step(model_output, t, sample).prev_sample` (e.g. `DPMSolverMultistepScheduler` or
            `DDIMScheduler` built `from_config` of the training scheduler). Its state is reset here.
            Trap: with `squaredcos_cap_v2`, `omega_999` is about 2e-9, and DPM-Solver's default `"linspace"`
            spacing starts at r = 999, where its x0 estimate divides by `sqrt(omega_r)` and explodes; pass
            `timestep_spacing="leading"` (starts at r = 900 for 10 steps).
        conditions (`torch.Tensor` of shape `(..., condition_dim)`): hidden states `h_i`.
        num_inference_steps (`int`, defaults to 10): solver steps.
        generator (`torch.Generator`, *optional*): source of the initial noise (and of stochastic solver noise).

    Returns:
        `torch.Tensor` of shape `(..., token_dim)`, `(N, token_dim)` for `(N, condition_dim)` conditions.
    """
    _check_int("num_inference_steps", num_inference_steps, 1)
    lead = conditions.shape[:-1]
    conditions, _ = _flatten(head, conditions)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    # 1. Start from Gaussian noise scaled by the scheduler's initial sigma.
    scheduler.set_timesteps(num_inference_steps, device=conditions.device)
    shape = (conditions.shape[0], head.token_dim)
    sample = randn(shape, generator, conditions.device, conditions.dtype)
    sample = sample * scheduler.init_noise_sigma
    # 2. Reverse process: predict epsilon (eq. 19) and let the solver take one step towards c^0.
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, t) if hasattr(scheduler, "scale_model_input") else sample
        noise_pred = head(model_input, t.expand(shape[0]), conditions)
        sample = scheduler.step(noise_pred, t, sample, **step_kwargs).prev_sample
    return sample.reshape(*lead, head.token_dim)
