"""UniToComModel (issue 16, Sec. IV of `unitocom-genib.txt`): the latent MLLM with an LM head and a per-token
diffusion head over received discrete and continuous tokens. Everything is built from tiny configs (no download)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tokcom.modeling import UniToComConfig, UniToComModel

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_IMAGE_TOKENS = 4
NUM_AUDIO_TOKENS = 6


def tiny_config(**kwargs) -> UniToComConfig:
    return UniToComConfig.tiny(
        image_tokenizer_config={"num_tokens": NUM_IMAGE_TOKENS},
        audio_tokenizer_config={"num_tokens": NUM_AUDIO_TOKENS},
        **kwargs,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UniToComModel(tiny_config()).eval()


def vqa_inputs(config, batch=2, seed=0):
    """[image placeholders, question words]: ids `(batch, 4 + 3)` and image tokens `(batch, 4, 8)`."""
    g = torch.Generator().manual_seed(seed)
    question = torch.randint(3, 500, (batch, 3), generator=g)
    ids = torch.cat([torch.full((batch, NUM_IMAGE_TOKENS), config.image_token_id), question], dim=1)
    return ids, torch.randn(batch, NUM_IMAGE_TOKENS, 8, generator=g)


# ---------------------------------------------------------------------------------------------- config


def test_presets_and_scheduler_config():
    config = tiny_config()
    assert config.model_type == "unitocom"
    assert (config.text_config.hidden_size, config.image_token_id, config.audio_token_id) == (128, 510, 511)
    assert config.image_tokenizer_config.modality == "image" and config.audio_tokenizer_config.modality == "audio"
    assert config.scheduler_config == {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                       "prediction_type": "epsilon"}  # fmt: skip
    paper = UniToComConfig.paper()  # architecture only: nothing is built or downloaded
    assert (paper.text_config.hidden_size, paper.text_config.num_hidden_layers) == (2048, 24)
    assert paper.image_tokenizer_config.image_size == 256 and paper.audio_tokenizer_config.sampling_rate == 24000


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"image_token_id": 512}, "image_token_id"),
        ({"audio_token_id": 2}, "audio_token_id"),  # the eos id
        ({"beta_schedule": "cosine"}, "beta_schedule"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 2000}, "num_inference_steps"),
        ({"num_noise_draws": 0}, "num_noise_draws"),
        ({"diffusion_loss_weight": -1.0}, "diffusion_loss_weight"),
        ({"timestep_spacing": "random"}, "timestep_spacing"),
    ],
)
def test_config_rejects_bad_values(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tiny_config(**kwargs)


def test_tokenizer_configs_must_match_their_modality():
    with pytest.raises(ValueError, match="audio_tokenizer_config"):
        UniToComConfig(audio_tokenizer_config={"modality": "image"})


# ---------------------------------------------------------------------------------------------- round trip


def test_save_and_reload_is_exact(model, tmp_path):
    from transformers import AutoModel

    import tokcom  # noqa: F401  registers the Auto classes

    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "unitocom"
    assert (saved["beta_schedule"], saved["num_train_timesteps"], saved["num_inference_steps"]) == (
        "squaredcos_cap_v2", 1000, 10)  # fmt: skip
    stored = load_file(tmp_path / "model.safetensors")
    assert any(key.startswith("diffusion_head.") for key in stored)
    assert any(key.startswith("image_tokenizer.link.") for key in stored)

    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is UniToComModel
    assert reloaded.config.scheduler_config == model.config.scheduler_config
    assert reloaded.lm_head.weight.data_ptr() == reloaded.backbone.embed_tokens.weight.data_ptr()  # still tied
    reference = model.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, reference[key]), key
    ids, images = vqa_inputs(model.config)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    with torch.no_grad():
        assert torch.equal(model(ids, image_tokens=images).logits, reloaded(ids, image_tokens=images).logits)
    caption = ids[:, NUM_IMAGE_TOKENS:]
    assert torch.equal(model.generate_tokens(caption, num_inference_steps=3, generator=g1),
                       reloaded.generate_tokens(caption, num_inference_steps=3, generator=g2))  # fmt: skip


# ---------------------------------------------------------------------------------------------- packing, causality


def test_packing_is_causal(model):
    """T^0 = [t^d, t^c] goes through causal layers: a later token (text or continuous) never changes earlier logits,
    an earlier continuous token does change later ones."""
    config = model.config
    ids, images = vqa_inputs(config)
    ids = torch.cat([ids, torch.full((2, NUM_IMAGE_TOKENS), config.image_token_id)], dim=1)  # question, then image 2
    images = torch.cat([images, torch.randn(2, NUM_IMAGE_TOKENS, 8)], dim=1)
    with torch.no_grad():
        base = model(ids, image_tokens=images).logits
        later_text = ids.clone()
        later_text[:, 6] = 42  # the last question word
        changed = model(later_text, image_tokens=images).logits
        assert torch.equal(changed[:, :6], base[:, :6]) and not torch.allclose(changed[:, 6:], base[:, 6:])
        later_image = images.clone()
        later_image[:, -1] += 1.0  # the last continuous token
        changed = model(ids, image_tokens=later_image).logits
        assert torch.equal(changed[:, :-1], base[:, :-1]) and not torch.allclose(changed[:, -1], base[:, -1])
        earlier_image = images.clone()
        earlier_image[:, 0] += 1.0  # the first continuous token reaches every later position
        changed = model(ids, image_tokens=earlier_image).logits
        assert not torch.allclose(changed[:, -1], base[:, -1])


def test_audio_and_image_tokens_in_one_sequence(model):
    """ASR-like rows: audio placeholders then text; the audio tokens are read through their own projection."""
    config = model.config
    ids = torch.cat([torch.full((2, NUM_AUDIO_TOKENS), config.audio_token_id), torch.tensor([[5, 6], [7, 8]])], dim=1)
    audio = torch.randn(2, NUM_AUDIO_TOKENS, config.audio_tokenizer_config.token_dim)
    with torch.no_grad():
        out = model(ids, audio_tokens=audio)
        moved = model(ids, audio_tokens=audio + 1.0)
    assert out.logits.shape == (2, NUM_AUDIO_TOKENS + 2, 512)
    assert not torch.allclose(out.logits, moved.logits)


def test_send_runs_tokenizer_and_link(model):
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ideal = model.send("image", images, channel_type="none")
        assert torch.equal(ideal, model.image_tokenizer.encode(pixel_values=images).mean)
    g = torch.Generator().manual_seed(0)
    noisy = model.send("image", images, snr_db=torch.tensor([-10.0, 0.0, 30.0]), channel_type="rayleigh", generator=g)
    assert noisy.shape == (3, NUM_IMAGE_TOKENS, 8) and torch.isfinite(noisy).all()
    audio = model.send("audio", torch.full((1, 96, 40), -35.0), snr_db=10.0)
    assert audio.shape == (1, NUM_AUDIO_TOKENS, 8)


# ---------------------------------------------------------------------------------------------- losses


def test_losses_combine_and_ignore_placeholders(model):
    config = model.config
    ids, images = vqa_inputs(config)
    labels = ids.clone()
    labels[:, :NUM_IMAGE_TOKENS] = 7  # placeholder positions never count, whatever the labels say
    out = model(ids, image_tokens=images, labels=labels)
    only_text = labels.clone()
    only_text[:, :NUM_IMAGE_TOKENS] = -100
    assert torch.allclose(out.loss, model(ids, image_tokens=images, labels=only_text).loss)
    assert out.diffusion_loss is None and torch.equal(out.loss, out.lm_loss)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    mask = torch.tensor([[True] * NUM_IMAGE_TOKENS, [False] * NUM_IMAGE_TOKENS])
    both = model(ids, image_tokens=images, labels=labels, diffusion_mask=mask, generator=g1)
    diff_only = model(ids, image_tokens=images, diffusion_mask=mask, generator=g2)
    assert torch.allclose(both.diffusion_loss, diff_only.diffusion_loss)
    assert torch.allclose(both.loss, both.lm_loss + config.diffusion_loss_weight * both.diffusion_loss)
    assert diff_only.lm_loss is None and torch.equal(diff_only.loss, diff_only.diffusion_loss)


def test_next_token_diffusion_overfits_and_generates_with_cache():
    """Four captions, each followed by its own 4 image tokens: L_Diff (eq. 19) falls within a few dozen steps, and
    after 200 steps next-token diffusion with the KV cache (eq. 17) reproduces each caption's own tokens."""
    torch.manual_seed(0)
    config = tiny_config()
    model = UniToComModel(config)
    g = torch.Generator().manual_seed(0)
    captions = torch.tensor([[5, 6, 7], [8, 9, 10], [11, 12, 13], [14, 15, 16]])
    ids = torch.cat([captions, torch.full((4, NUM_IMAGE_TOKENS), config.image_token_id)], dim=1)
    targets = torch.randn(4, NUM_IMAGE_TOKENS, 8, generator=g)
    everything = torch.ones(4, NUM_IMAGE_TOKENS, dtype=torch.bool)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(200):
        loss = model(ids, image_tokens=targets, diffusion_mask=everything, generator=g).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, dozens = sum(losses[:5]) / 5, sum(losses[40:50]) / 10
    assert dozens < 0.7 * first, (first, dozens)  # a few dozen steps
    assert sum(losses[-20:]) / 20 < 0.3 * first
    model.eval()
    generated = model.generate_tokens(captions, generator=torch.Generator().manual_seed(1))
    assert generated.shape == (4, NUM_IMAGE_TOKENS, 8)
    distances = torch.cdist(generated.reshape(4, -1), targets.reshape(4, -1))
    assert torch.equal(distances.argmin(dim=1), torch.arange(4)), distances
    assert ((generated - targets) ** 2).mean() < 0.3 * (targets**2).mean()


# ---------------------------------------------------------------------------------------------- generation


def test_greedy_text_generation_with_cache_matches_teacher_forcing(model):
    config = model.config
    ids, images = vqa_inputs(config, batch=3, seed=1)
    out = model.generate_text(ids, image_tokens=images, max_new_tokens=6, return_dict_in_generate=True)
    sequences = out.sequences
    assert sequences.shape[0] == 3 and 1 <= sequences.shape[1] <= 6 and out.sequence_scores.shape == (3,)
    with torch.no_grad():
        logits = model(torch.cat([ids, sequences], dim=1), image_tokens=images).logits
    forced = logits[:, ids.shape[1] - 1 : -1].argmax(dim=-1)
    eos = config.text_config.eos_token_id
    for row in range(3):  # up to and including the first eos (padding follows it)
        length = sequences.shape[1]
        hits = (sequences[row] == eos).nonzero()
        if len(hits):
            length = int(hits[0]) + 1
        assert torch.equal(sequences[row, :length], forced[row, :length])
        assert torch.allclose(out.scores[0][row], logits[row, ids.shape[1] - 1].float(), atol=1e-5)


def test_left_padding_gives_the_same_generation(model):
    config = model.config
    ids, images = vqa_inputs(config, batch=2, seed=2)
    single = model.generate_text(ids[1:], image_tokens=images[1:], max_new_tokens=4)
    padded = torch.cat([torch.zeros(2, 2, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.tensor([[0, 0], [0, 0]]), torch.ones_like(ids)], dim=1)
    padded[0, :2], mask[0, :2] = torch.tensor([9, 10]), 1  # row 0 holds two more words, row 1 is padded
    batch = model.generate_text(padded, attention_mask=mask, image_tokens=images, max_new_tokens=4)
    assert torch.equal(batch[1, : single.shape[1]], single[0])


def test_generate_tokens_and_image_shapes(model):
    caption = torch.tensor([[5, 6, 7], [8, 9, 10]])
    g = torch.Generator().manual_seed(0)
    tokens = model.generate_tokens(caption, num_tokens=3, num_inference_steps=2, generator=g)
    assert tokens.shape == (2, 3, 8) and torch.isfinite(tokens).all()
    images = model.generate_image(caption, num_inference_steps=2, generator=g)
    assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    again = model.generate_tokens(caption, num_tokens=3, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)  # every draw comes from the generator


# ---------------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_errors_naming_the_argument(model):
    config = model.config
    ids, images = vqa_inputs(config)
    cases = [
        (lambda: model(ids.float(), image_tokens=images), "input_ids"),
        (lambda: model(ids[0], image_tokens=images), "input_ids"),
        (lambda: model(ids + 600, image_tokens=images), "input_ids"),
        (lambda: model(ids), "image_tokens"),  # placeholders without tokens
        (lambda: model(ids, image_tokens=images[:, :3]), "image_tokens"),  # count mismatch
        (lambda: model(ids, image_tokens=images[..., :5]), "image_tokens"),  # wrong token_dim
        (lambda: model(ids, image_tokens=images * float("nan")), "image_tokens"),
        (lambda: model(ids, attention_mask=torch.ones(2, 3), image_tokens=images), "attention_mask"),
        (lambda: model(ids, image_tokens=images, labels=ids[:, :3]), "labels"),
        (lambda: model(ids, image_tokens=images, diffusion_mask=torch.ones(2, 3, dtype=torch.bool)), "diffusion_mask"),
        (lambda: model(ids[:, NUM_IMAGE_TOKENS:], diffusion_mask=torch.ones(2, 4, dtype=torch.bool)), "diffusion_mask"),
        (lambda: model.generate_text(ids, image_tokens=images, max_new_tokens=0), "max_new_tokens"),
        (lambda: model.generate_text(ids, attention_mask=torch.tensor([[1] * 6 + [0]] * 2), image_tokens=images),
         "attention_mask"),
        (lambda: model.generate_tokens(ids[:, NUM_IMAGE_TOKENS:], num_tokens=0), "num_tokens"),
        (lambda: model.generate_tokens(ids[:, NUM_IMAGE_TOKENS:], num_inference_steps=0), "num_inference_steps"),
        (lambda: model.send("video", torch.rand(1, 3, 32, 32)), "modality"),
        (lambda: model.send("image", torch.rand(1, 3, 16, 16)), "pixel_values"),
    ]
    for call, argument in cases:
        with pytest.raises(ValueError, match=argument):
            call()
    with pytest.raises(TypeError):
        model(ids, image_tokens=images, snr=3.0)  # unknown keyword arguments are rejected


# ---------------------------------------------------------------------------------------------- training stages


def _small_mllm_recipe(tmp_path, monkeypatch, name: str, scenes: int, utterances: int, stage: dict):
    """A pretrained (random, saved) 8-token image tokenizer and a recipe whose `mllm` stage (`stage`) starts from
    it, on `scenes` shapes scenes and `utterances` spoken ones (espeak-ng speech cached under `tmp_path`)."""
    from tokcom.modeling import UniToComTokenizerConfig, UniToComTokenizerModel

    monkeypatch.setenv("TOKCOM_CACHE", str(tmp_path / "cache"))  # espeak-ng speech for the ASR task
    torch.manual_seed(1)
    image_tokenizer = UniToComTokenizerModel(UniToComTokenizerConfig.tiny(num_tokens=8))
    image_tokenizer.save_pretrained(tmp_path / "image_tokenizer")
    recipe = {
        "name": name, "family": "unitocom", "seed": 0, "num_threads": 1,
        "data": {"train_scenes": scenes, "questions_per_scene": 2, "asr_utterances": utterances, "asr_windows": 6},
        "model": {"image_tokenizer_path": str(tmp_path / "image_tokenizer"),
                  "audio_tokenizer_config": {"modality": "audio", "num_tokens": 4}},
        "channel": {"snr_db_range": [0.0, 20.0], "channel_types": ["awgn", "rayleigh"]},
        "stages": {"mllm": stage},
    }  # fmt: skip
    return image_tokenizer, recipe


def test_stages_train_every_task_with_pretrained_tokenizers_frozen(tmp_path, monkeypatch):
    """The `mllm` stage on the engine: pretrained tokenizers load from `model.*_tokenizer_path` and stay frozen,
    the MLLM trains on VQA, text-to-image and ASR batches, and the result reloads with its word tokenizer."""
    from transformers import PreTrainedTokenizerFast

    from tokcom.training.engine import train
    from tokcom.training.stages_unitocom import UniToComLoss, UniToComStages

    image_tokenizer, recipe = _small_mllm_recipe(tmp_path, monkeypatch, "unitocom_test", scenes=12, utterances=6,
                                                 stage={"steps": 6, "batch_size": 4, "learning_rate": 0.002})  # fmt: skip
    stages = UniToComStages.setup(recipe, None, tmp_path / "unused")
    config = stages.model.config
    assert config.image_tokenizer_config.num_tokens == 8
    for name, value in image_tokenizer.state_dict().items():
        assert torch.equal(stages.model.image_tokenizer.state_dict()[name], value), name
    objective = UniToComLoss(stages.model)
    for task, placeholder, count in (("vqa", config.image_token_id, 8), ("text_to_image", config.image_token_id, 8),
                                     ("asr", config.audio_token_id, 6 * 4)):  # fmt: skip
        batch = stages.task_batch(task, np.random.default_rng(0), 3)
        assert ((batch["input_ids"] == placeholder).sum(dim=1) == count).all(), task
        assert ("labels" in batch) == (task != "text_to_image")
        loss = objective(**batch, snr_db=torch.full((3,), 10.0), channel_type="rayleigh")
        assert torch.isfinite(loss), task
    assert "images" not in stages.task_batch("asr", np.random.default_rng(0), 2)

    final = train(recipe, tmp_path / "run")
    reloaded = UniToComModel.from_pretrained(final)
    for name, value in image_tokenizer.state_dict().items():  # frozen through the stage
        assert torch.equal(reloaded.image_tokenizer.state_dict()[name], value), name
    assert not torch.equal(reloaded.backbone.embed_tokens.weight, stages.model.backbone.embed_tokens.weight)
    words = PreTrainedTokenizerFast.from_pretrained(final)
    assert len(words) <= config.text_config.vocab_size - 2  # the placeholder ids stay out of the words


@pytest.mark.slow
def test_two_cpu_processes_train_a_unitocom_stage_and_stay_identical(tmp_path, monkeypatch, launch_two_processes):
    """`accelerate launch` with 2 CPU processes (DDP, gloo) runs the `mllm` stage over a pretrained, frozen image
    tokenizer on every task (a resumable state is saved midway); both ranks end identical."""
    _, recipe = _small_mllm_recipe(tmp_path, monkeypatch, "unitocom_ddp_test", scenes=8, utterances=4, stage={
        "steps": 4, "batch_size": 2, "learning_rate": 0.002, "checkpoint_every": 2,
        "tasks": {"vqa": 1.0, "text_to_image": 1.0, "asr": 2.0}})  # draws t2i, asr, t2i, vqa  # fmt: skip
    log = launch_two_processes(recipe, tmp_path)
    assert log["num_processes"] == 2 and log["stages"][0]["num_processes"] == 2
    assert log["rank_parameter_digests"][0] == log["rank_parameter_digests"][1]


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("stages", {"mllm": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "tasks": {"caption": 1.0}}},
         "stages.mllm.tasks"),
        ("stages", {"mllm": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "ideal_link": "yes"}},
         "stages.mllm.ideal_link"),
        ("data", {"asr_windows": 0}, "data.asr_windows"),
        ("model", {"image_tokenizer_dir": "x"}, "model.image_tokenizer_dir"),
    ],
)
def test_recipe_fields_are_checked(section, value, field):
    from tokcom.training.recipe import validate_recipe

    recipe = {"family": "unitocom", "stages": {"mllm": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3}},
              section: value}  # fmt: skip
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate_recipe(recipe)
