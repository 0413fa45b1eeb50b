"""UniToCom's sigma-GenIB / VAE tokenizers (modeling/tokenization_unitocom.py), their recipe stages and Griffin-Lim."""

import json
import math

import pytest
import torch

from tokcom.modeling.configuration_unitocom import UniToComTokenizerConfig
from tokcom.modeling.tokenization_unitocom import (
    UniToComTokenizerModel,
    griffin_lim,
    log_mel_spectrogram,
)

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_encoder_layers": 1, "num_decoder_layers": 1,
         "link_hidden_size": 32}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest), no OpenMP spin-waits


def small_model(seed=0, **overrides) -> UniToComTokenizerModel:
    torch.manual_seed(seed)
    return UniToComTokenizerModel(UniToComTokenizerConfig.tiny(**{**SMALL, **overrides})).eval()


def inputs_for(model, batch=2, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    if c.modality == "image":
        return {"pixel_values": torch.rand(batch, c.num_channels, c.image_size, c.image_size, generator=g)}
    return {"input_features": torch.randn(batch, c.num_frames, c.num_mel_bins, generator=g) * 15 - 50}


@pytest.mark.parametrize("modality", ["image", "audio"])
@pytest.mark.parametrize("bottleneck", ["sigma_genib", "vae"])
@pytest.mark.parametrize("num_tokens", [16, 64])
def test_shapes(modality, bottleneck, num_tokens):
    model = small_model(modality=modality, bottleneck=bottleneck, num_tokens=num_tokens, num_samples=3)
    inputs = inputs_for(model, batch=2)
    out = model(**inputs, generator=torch.Generator().manual_seed(0))
    assert out.mean.shape == (2, num_tokens, 8)
    assert out.tokens.shape == (3, 2, num_tokens, 8)
    assert (out.logvar is None) == (bottleneck == "sigma_genib")
    data = next(iter(inputs.values()))
    assert out.reconstruction.shape == data.shape
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert model.decode(out.mean).shape == data.shape
    sent = model(**inputs, snr_db=torch.tensor([-10.0, 20.0]), channel_type="rayleigh", num_symbols_per_token=2)
    assert sent.received_mean.shape == out.mean.shape
    if modality == "image":
        assert 0.0 <= out.reconstruction.min() and out.reconstruction.max() <= 1.0


def test_save_from_pretrained_round_trip_in_safetensors(tmp_path):
    from transformers import AutoModel

    import tokcom.registration

    tokcom.registration.register()
    model = small_model(bottleneck="vae")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "unitocom_tokenizer"
    for loaded in (UniToComTokenizerModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, UniToComTokenizerModel)
        original, reloaded = model.state_dict(), loaded.state_dict()
        assert original.keys() == reloaded.keys()
        assert all(torch.equal(original[k], reloaded[k]) for k in original)
        inputs = inputs_for(model)
        a = model(**inputs, snr_db=5.0, generator=torch.Generator().manual_seed(3))
        b = loaded.eval()(**inputs, snr_db=5.0, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a.loss, b.loss) and torch.equal(a.reconstruction, b.reconstruction)


def test_sigma_genib_noise_has_fixed_variance_not_learned():
    model = small_model(c_sigma=0.5)
    names = [name for name, _ in model.named_parameters() if name.startswith(("encoder.", "decoder."))]
    assert not any("logvar" in name or "sigma" in name for name in names)
    assert small_model(bottleneck="vae").encoder.to_logvar is not None
    mean = torch.zeros(4000, 16, 8)
    tokens = model.sample_tokens(mean, num_samples=1, generator=torch.Generator().manual_seed(0))[0]
    # per sample t - mu = sigma * eps with one sigma ~ N(0, C_sigma^2): E[(t - mu)^2] = C_sigma^2, and the
    # per-sample RMS is |sigma| (half-normal: mean C_sigma * sqrt(2 / pi)), not a constant
    assert tokens.pow(2).mean().sqrt().item() == pytest.approx(0.5, rel=0.05)
    rms = tokens.pow(2).mean(dim=(1, 2)).sqrt()
    assert rms.mean().item() == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=0.05)
    assert rms.std().item() > 0.2
    # the noise does not depend on the input: another mu, same generator, same residual
    shifted = model.sample_tokens(mean + 3.0, num_samples=1, generator=torch.Generator().manual_seed(0))[0]
    assert torch.allclose(shifted - 3.0, tokens, atol=1e-6)
    # C_sigma = 0: the tokens are the means
    deterministic = small_model(c_sigma=0.0)
    assert torch.equal(deterministic.sample_tokens(mean[:2], num_samples=2), mean[:2].expand(2, -1, -1, -1))


def test_rate_terms_against_hand_computation():
    vae, genib = small_model(bottleneck="vae"), small_model()
    mean = torch.tensor([0.5, -1.0]).view(1, 1, 2)
    logvar = torch.tensor([0.0, math.log(4.0)]).view(1, 1, 2)
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2 per element, averaged
    first = (0.25 + 1.0 - 1.0 - 0.0) / 2
    second = (1.0 + 4.0 - 1.0 - math.log(4.0)) / 2
    assert vae.rate_loss(mean, logvar).item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert genib.rate_loss(mean).item() == pytest.approx((0.25 + 1.0) / 4, rel=1e-6)


def test_eq13_mixes_deterministic_and_stochastic_terms():
    inputs = inputs_for(small_model())
    losses = {}
    for lam in (0.0, 1.0):
        model = small_model(stochastic_weight=lam, rate_weight=0.0)
        losses[lam] = [model(**inputs, generator=torch.Generator().manual_seed(s)).loss for s in (0, 1)]
        deterministic = model.distortion(model.patchify(inputs["pixel_values"]), model.patchify(inputs["pixel_values"]))
        assert torch.equal(deterministic, torch.zeros(2))
    assert torch.equal(losses[0.0][0], losses[0.0][1])  # lambda = 0: only F_beta(mu), no sampling
    assert not torch.equal(losses[1.0][0], losses[1.0][1])
    model = small_model(rate_weight=0.3)
    out = model(**inputs, generator=torch.Generator().manual_seed(0))
    assert out.loss.item() == pytest.approx(0.3 * out.rate_loss.item() + out.reconstruction_loss.item(), rel=1e-5)


@pytest.mark.parametrize("bottleneck", ["sigma_genib", "vae"])
def test_loss_decreases_on_a_tiny_batch(bottleneck):
    model = small_model(bottleneck=bottleneck, patch_size=8).train()
    coarse = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    images = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear")  # smooth: learnable in a few steps
    assert_loss_falls(model, images)


def assert_loss_falls(model, images, steps=30):
    """AdamW steps on one batch: the mean loss of the last 5 steps is below 0.7x that of the first 5."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        loss = model(pixel_values=images, generator=torch.Generator().manual_seed(step)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_convolutional_refinement_head_renders_across_patch_borders(tmp_path):
    """`decoder_conv_channels` > 0: F_beta's 3x3 convolutions see the neighbouring patches' features, so one patch's
    pixels change when only another patch's features do (the linear head cannot); it learns and round-trips."""
    from tokcom.modeling.tokenization_unitocom import image_to_patches, patches_to_image

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(patches_to_image(image_to_patches(images, 8), 32, 8), images)
    model = small_model(patch_size=8, decoder_conv_channels=4).eval()
    features = torch.randn(1, 16, 4 * 64)  # 16 patches of 4 feature channels x 8 x 8 pixels
    moved = features.clone()
    moved[:, 1] += 1.0  # patch (0, 1) only
    render = lambda f: image_to_patches(model.decoder.refine(patches_to_image(f, 32, 8)), 8)  # noqa: E731
    with torch.no_grad():
        changed = (render(moved) - render(features)).abs().amax(-1)[0]  # per patch
    assert changed[0] > 0 and changed[1] > 0 and changed[15] == 0  # the neighbour (0, 0) changes, a far patch not
    smooth = torch.nn.functional.interpolate(images[:, :, ::16, ::16], size=32, mode="bilinear")
    assert_loss_falls(model.train(), smooth)
    model.eval().save_pretrained(tmp_path)
    loaded = UniToComTokenizerModel.from_pretrained(tmp_path).eval()
    tokens = model.encode(pixel_values=smooth).mean
    assert torch.equal(loaded.decode(tokens), model.decode(tokens))


def test_link_rates_and_constellations():
    model = small_model()
    tokens = torch.randn(2, 32, 8)
    for k in model.config.link_symbols_per_token_choices:
        assert model.link.encode(tokens, 10.0, k).shape == (2, 32 * k)
    received = model.transmit(tokens, torch.tensor([0.0, 20.0]), 4, "awgn", "qam16", torch.Generator().manual_seed(0))
    assert received.shape == tokens.shape and torch.isfinite(received).all()
    with pytest.raises(ValueError, match="num_symbols_per_token"):
        model.transmit(tokens, 10.0, 3)
    with pytest.raises(ValueError, match="snr_db"):
        model.transmit(tokens, float("nan"))


@pytest.mark.parametrize(
    "overrides, name",
    [({"num_tokens": 0}, "num_tokens"), ({"num_tokens": -4}, "num_tokens"), ({"c_sigma": -0.1}, "c_sigma"),
     ({"stochastic_weight": 1.5}, "stochastic_weight"), ({"stochastic_weight": -0.1}, "stochastic_weight"),
     ({"c_sigma": float("nan")}, "c_sigma"), ({"bottleneck": "vq"}, "bottleneck"), ({"image_size": 30}, "image_size"),
     ({"num_samples": 0}, "num_samples"), ({"decoder_conv_channels": -1}, "decoder_conv_channels"),
     ({"decoder_conv_channels": True}, "decoder_conv_channels"),
     ({"modality": "audio", "decoder_conv_channels": 8}, "decoder_conv_channels")],
)  # fmt: skip
def test_bad_config_raises_naming_the_argument(overrides, name):
    with pytest.raises(ValueError, match=name):
        UniToComTokenizerConfig.tiny(**overrides)


def test_bad_inputs_raise_naming_the_argument():
    model = small_model()
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.rand(2, 3, 64, 64))  # wrong size
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.rand(2, 1, 32, 32))  # wrong channels
    nan = torch.rand(2, 3, 32, 32)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=nan)
    with pytest.raises(ValueError, match="pixel_values"):
        model(input_features=torch.zeros(2, 96, 40))  # an image tokenizer given audio
    with pytest.raises(ValueError, match="tokens"):
        model.decode(torch.zeros(2, 31, 8))
    audio = small_model(modality="audio")
    with pytest.raises(ValueError, match="input_features"):
        audio(input_features=torch.zeros(2, 95, 40))
    with pytest.raises(ValueError, match="to_waveform"):
        model.to_waveform(torch.zeros(1, 96, 40))


def test_griffin_lim_returns_a_finite_waveform_close_to_the_mel():
    config = UniToComTokenizerConfig.tiny(modality="audio")
    t = torch.arange(config.num_waveform_samples + config.hop_length) / config.sampling_rate
    wave = 0.3 * torch.sin(2 * math.pi * (200 * t + 900 * t**2))  # a chirp from 200 Hz up
    mel = log_mel_spectrogram(wave, config)[:, : config.num_frames]
    assert mel.shape == (1, config.num_frames, config.num_mel_bins)
    audio = small_model(modality="audio")
    restored = audio.to_waveform(mel, num_iterations=32, generator=torch.Generator().manual_seed(0))
    assert restored.shape == (1, config.num_waveform_samples) and torch.isfinite(restored).all()
    again = log_mel_spectrogram(restored, config)[:, : config.num_frames]
    loud = mel > mel.max() - 40  # the chirp's own bins, not the floor
    error_db = (again - mel)[loud].abs().mean()
    reversed_db = (again.flip(1) - mel)[loud].abs().mean()  # the same sound played backwards: far off
    assert error_db < 4.0 and reversed_db > 2 * error_db, (error_db, reversed_db)
    with pytest.raises(ValueError, match="log_mel_db"):
        griffin_lim(torch.zeros(1, 96, 39), config)


def _recipe(tmp_path):
    from tokcom.training.recipe import load_recipe

    recipe = load_recipe("unitocom_tokenizer_tiny")
    recipe["data"] = {"train_examples": 24}
    recipe["model"].update(SMALL)
    recipe["num_threads"] = 1
    for stage, steps in (("tokenizer", 4), ("link", 2), ("joint", 2)):
        recipe["stages"][stage].update(steps=steps, batch_size=4, checkpoint_every=1)
    return recipe


def test_engine_trains_and_resumes_exactly(tmp_path):
    from tokcom.training.engine import parameter_digest, train

    recipe = _recipe(tmp_path)
    whole = train(recipe, tmp_path / "whole")
    assert (whole / "model.safetensors").is_file()
    assert train(recipe, tmp_path / "cut", max_steps=3) is None  # stopped inside the tokenizer stage
    assert train(recipe, tmp_path / "cut", resume=True, max_steps=2) is None  # inside the link stage
    resumed = train(recipe, tmp_path / "cut", resume=True)
    a, b = UniToComTokenizerModel.from_pretrained(whole), UniToComTokenizerModel.from_pretrained(resumed)
    assert parameter_digest(a) == parameter_digest(b)
    log = json.loads((whole.parent / "training_log.json").read_text())
    assert [s["stage"] for s in log["stages"]] == ["tokenizer", "link", "joint"]


def test_recipe_checks_family_keys():
    from tokcom.training.recipe import load_recipe, validate_recipe

    recipe = load_recipe("unitocom_tokenizer_tiny")
    recipe["stages"]["link"]["constellations"] = ["qam8"]
    with pytest.raises(ValueError, match="constellations"):
        validate_recipe(recipe)
    recipe = load_recipe("unitocom_tokenizer_tiny")
    recipe["model"]["num_tokenz"] = 3
    with pytest.raises(ValueError, match="num_tokenz"):
        validate_recipe(recipe)


def test_spoken_log_mels_feed_the_audio_tokenizer(tmp_path):
    import numpy as np

    from tokcom.training.stages_unitocom_tokenizer import crop_log_mels, spoken_log_mels

    config = UniToComTokenizerConfig.tiny(modality="audio", **SMALL)
    mels = spoken_log_mels(config, 3, num_speakers=2, seed=0, cache_dir=tmp_path)
    assert len(mels) == 3 and all(m.shape[0] >= config.num_frames and m.shape[1] == config.num_mel_bins for m in mels)
    assert all(torch.isfinite(m).all() and m.max() > -30 for m in mels)  # speech, not the floor
    crops = crop_log_mels(mels, [0, 2, 2], np.random.default_rng(0), config.num_frames)
    assert crops.shape == (3, config.num_frames, config.num_mel_bins)
    out = UniToComTokenizerModel(config)(input_features=crops, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)


@pytest.mark.slow
def test_two_cpu_processes_train_the_tokenizer_and_stay_identical(tmp_path, launch_two_processes):
    """`accelerate launch` with 2 CPU processes (DDP, gloo) runs Algorithm 1's stages; both ranks end identical."""
    log = launch_two_processes(_recipe(tmp_path), tmp_path)
    assert log["num_processes"] == 2 and all(stage["num_processes"] == 2 for stage in log["stages"])
    assert log["rank_parameter_digests"][0] == log["rank_parameter_digests"][1]
