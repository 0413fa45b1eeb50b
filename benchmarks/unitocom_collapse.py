"""Variance collapse, measured: the VAE baseline ("UniToCom+VAE") vs sigma-GenIB (Sec. III-C of
`unitocom-genib.txt`), image and audio tokenizers with S_m = 32 tokens of dimension 8 (256 latent units).

On held-out data, per latent unit u (one dimension of one token):
  - posterior variance: the VAE's learned `exp(logvar_u(x))` averaged over x; sigma-GenIB's is fixed,
    `E[sigma^2] = C_sigma^2` for every unit and input;
  - active units: `Cov_x(E[t_u | x]) = Var_x(mu_u(x)) > 0.01` (the usual criterion, Burda et al. 2016);
  - the VAE's KL per unit (a unit with KL ~ 0 has collapsed onto the prior);
  - the noise-to-signal ratio `posterior variance / Var_x(mu_u)` (how much randomness the tokens carry relative
    to their spread; a collapsed variance makes tokens near-deterministic);
  - reconstruction (PSNR [dB] for images, mel distance [dB] for audio) from the mean tokens, from posterior
    samples, and from the means perturbed by `alpha * std_x(mu_u) * eps` (alpha = 0.1, 0.3: prediction errors
    of a next-token model, the paper's motivation), each the mean of 4 draws.

Tokenizers come from `unitocom_common.trained_tokenizer` (the engine, tiny recipe stages, benchmark budget;
shared with `unitocom_reconstruction_vs_snr.py`, cached). Writes `results/unitocom_tokenizers/collapse.json`.

    python benchmarks/unitocom_collapse.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from unitocom_common import OUT_DIR, input_kwargs, metric_name, quality, test_inputs, trained_tokenizer, write_json

ACTIVE_THRESHOLD = 0.01
COLLAPSED_VARIANCE = 0.01  # posterior variance below this: collapsed
DRAWS = 4
ALPHAS = (0.1, 0.3)


@torch.no_grad()
def collapse_statistics(model, inputs: torch.Tensor) -> dict:
    """The statistics above for one tokenizer on `inputs`."""
    config = model.config
    encoded = model.encode(**input_kwargs(model, inputs))
    mean = encoded.mean.flatten(1)  # (N, units)
    spread = mean.var(dim=0)  # Var_x(mu_u)
    if config.bottleneck == "vae":
        posterior = encoded.logvar.exp().flatten(1).mean(dim=0)
        kl = 0.5 * (encoded.mean.pow(2) + encoded.logvar.exp() - 1 - encoded.logvar).flatten(1).mean(dim=0)
    else:
        posterior = torch.full_like(spread, config.c_sigma**2)
        kl = None
    decode = lambda tokens: model.decode(tokens)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    from_mean = quality(model, inputs, decode(encoded.mean))
    sampled = [quality(model, inputs, decode(model.sample_tokens(encoded.mean, encoded.logvar, 1, generator)[0]))
               for _ in range(DRAWS)]  # fmt: skip
    perturbed = {}
    for alpha in ALPHAS:
        scale = alpha * spread.sqrt().view(1, *encoded.mean.shape[1:])
        perturbed[str(alpha)] = float(np.mean([
            quality(model, inputs, decode(encoded.mean + scale * torch.randn(encoded.mean.shape, generator=generator)))
            for _ in range(DRAWS)]))  # fmt: skip
    ratio = posterior / spread.clamp_min(1e-12)
    stats = {
        "units": int(mean.shape[1]),
        "active_units": int((spread > ACTIVE_THRESHOLD).sum()),
        "posterior_variance": {
            "mean": float(posterior.mean()), "median": float(posterior.median()), "min": float(posterior.min()),
            "p10": float(posterior.quantile(0.1)), "max": float(posterior.max()),
            "fraction_below_0.01": float((posterior < COLLAPSED_VARIANCE).float().mean()),
        },
        "mean_token_spread": {"median_var_x_mu": float(spread.median()), "rms_mu": float(mean.pow(2).mean().sqrt())},
        "noise_to_signal_median": float(ratio.median()),
        "reconstruction": {
            "metric": metric_name(model), "from_mean": round(from_mean, 3),
            "from_posterior_samples": round(float(np.mean(sampled)), 3),
            "from_perturbed_mean": {alpha: round(value, 3) for alpha, value in perturbed.items()},
        },
    }  # fmt: skip
    if kl is not None:
        stats["kl_per_unit"] = {"median": float(kl.median()), "fraction_below_0.01": float((kl < 0.01).float().mean())}
    return stats


def main() -> None:
    torch.set_num_threads(1)
    began = time.time()
    results = {}
    for modality in ("image", "audio"):
        for bottleneck in ("vae", "sigma_genib"):
            model, seconds = trained_tokenizer(modality, bottleneck, 32)
            stats = collapse_statistics(model, test_inputs(model))
            stats.update(num_test_inputs=len(test_inputs(model)), training_seconds=seconds,
                         c_sigma=model.config.c_sigma if bottleneck == "sigma_genib" else None,
                         rate_weight=model.config.rate_weight)  # fmt: skip
            results.setdefault(modality, {})[bottleneck] = stats
            print(modality, bottleneck, {k: stats[k] for k in ("active_units", "posterior_variance", "reconstruction")})
    results["settings"] = {
        "num_tokens": 32, "token_dim": 8, "active_threshold": ACTIVE_THRESHOLD, "draws": DRAWS,
        "seconds": round(time.time() - began, 1), "command": "python benchmarks/unitocom_collapse.py",
    }  # fmt: skip
    write_json(OUT_DIR / "collapse.json", results)
    print(f"wrote {OUT_DIR / 'collapse.json'}")


if __name__ == "__main__":
    main()
