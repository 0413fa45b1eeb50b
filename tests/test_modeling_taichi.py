"""TaiChiForConditionalGeneration (taichi-vlm-tokencom.txt, Secs. III-V): shapes, the LLM split across the link,
teacher forcing equal to generation, padding invariance, round trip, variants and bad inputs."""

from __future__ import annotations

import doctest

import pytest
import torch

import tokcom.modeling.configuration_taichi as configuration_taichi
import tokcom.modeling.modeling_taichi as modeling_taichi
from tokcom.modeling import Link, TaiChiConfig, TaiChiForConditionalGeneration

NOISELESS = {"visual": Link(snr_db=float("inf"), num_tokens=16), "text": Link(snr_db=float("inf"))}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TaiChiForConditionalGeneration(TaiChiConfig.tiny()).eval()


def _inputs(batch=2, prompt=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(batch, 3, 64, 64, generator=g),
        "input_ids": torch.randint(3, 512, (batch, prompt), generator=g),
    }


def test_docstrings_run():
    for module in (configuration_taichi, modeling_taichi):
        assert doctest.testmod(module).failed == 0


def test_config_round_trip_and_checks(tmp_path):
    config = TaiChiConfig.tiny(num_transmitter_layers=1, projector_type="mlp")
    config.save_pretrained(tmp_path)
    assert TaiChiConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    bad = {
        "num_transmitter_layers": (4, "num_transmitter_layers"),
        "ban_coarse_window": (2, "ban_coarse_window"),
        "projector_type": ("conv", "projector_type"),
        "max_visual_tokens": (17, "max_visual_tokens"),
        "lr_image_size": (30, "lr_image_size"),
        "max_new_tokens": ({"translate": 3}, "max_new_tokens"),
        "prompt_order": (["visual", "audio"], "prompt_order"),
        "text_embedding_multiplier": (0.0, "text_embedding_multiplier"),
    }
    for field, (value, name) in bad.items():
        with pytest.raises(ValueError, match=name):
            TaiChiConfig.tiny(**{field: value})



def test_hr_image_size_is_required_when_the_hr_tower_has_none():
    """A V_h config without `image_size` (transformers' ResNet has none) needs `hr_image_size`, named in the error."""
    from transformers import ResNetConfig

    resnet = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    assert getattr(resnet, "image_size", None) is None
    with pytest.raises(ValueError, match="`hr_image_size` is required"):
        TaiChiConfig.tiny(vision_hr_config=resnet)
    assert TaiChiConfig.tiny(vision_hr_config=resnet, hr_image_size=64).hr_image_size == 64

def test_forward_shapes_and_visual_budget(model):
    inputs = _inputs()
    labels = torch.tensor([[9, 2, -100], [11, 12, 2]])
    out = model(**inputs, labels=labels, links=NOISELESS)
    assert out.sent.shape == (2, 16 + 7, 128) and out.logits.shape == (2, 3, 512)
    assert torch.isfinite(out.loss)
    assert (out.link_index == 0).sum(1).tolist() == [16, 16]
    for budget, sent in ((4, 4), (10, 9), (1, 1)):  # grid pooling: 10 on a 4x4 grid gives 3x3
        out = model(**inputs, num_visual_tokens=budget, snr_db=10.0)
        assert int((out.link_index[0] == 0).sum()) == sent
    text_only = model(input_ids=inputs["input_ids"], snr_db=5.0)  # sentiment: the sentence alone
    assert text_only.sent.shape == (2, 7, 128) and bool((text_only.link_index == 1).all())


@torch.no_grad()
def test_the_instruction_guides_the_encoding_of_the_visual_tokens(model):
    """Eq. (12) S_alpha(E(t), Z_v): the text comes first, so the token encoder's visual states change with the
    query (the instruction as a control signal, Sec. IV-B); with `prompt_order=["visual", "text"]` they cannot."""
    inputs, other = _inputs(), _inputs(seed=1)
    for order, depends in ((["text", "visual"], True), (["visual", "text"], False)):
        model.config.prompt_order = order
        try:
            first = model(**inputs, links=NOISELESS)
            second = model(**{**inputs, "input_ids": other["input_ids"]}, links=NOISELESS)
        finally:
            model.config.prompt_order = ["text", "visual"]
        visual = first.link_index == 0
        assert bool(visual[:, -16:].all()) == (order[-1] == "visual")
        assert torch.allclose(first.sent[visual], second.sent[visual], atol=1e-6) != depends


@torch.no_grad()
def test_sampling_is_reproducible_with_a_generator(model):
    inputs = _inputs()
    draws = [model.generate(**inputs, links=NOISELESS, do_sample=True, top_k=5, max_new_tokens=3,
                            generator=torch.Generator().manual_seed(seed)) for seed in (4, 4)]  # fmt: skip
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (2, 3)
    assert int(draws[0].min()) >= 0 and int(draws[0].max()) < 512


def test_teacher_forcing_equals_generation(model):
    inputs = _inputs(batch=3, seed=1)
    inputs["attention_mask"] = torch.tensor([[1] * 7, [0, 0] + [1] * 5, [1] * 6 + [0]])
    for links in (NOISELESS, {"visual": Link(snr_db=0.0, num_tokens=9), "text": Link(snr_db=5.0, channel_type="rayleigh")}):
        generated = model.generate(**inputs, links=links, max_new_tokens=5, return_dict_in_generate=True,
                                   generator=torch.Generator().manual_seed(3))
        steps = generated.sequences.shape[1]
        assert steps >= 2
        labels = generated.sequences.clone()
        forced = model(**inputs, labels=labels, links=links, generator=torch.Generator().manual_seed(3)).logits
        eos = model.config.text_config.eos_token_id
        for row in range(3):
            ids = generated.sequences[row].tolist()
            valid = ids.index(eos) + 1 if eos in ids else steps
            for step in range(valid):
                torch.testing.assert_close(forced[row, step], generated.scores[step][row], atol=2e-4, rtol=1e-4)


def test_receiver_sees_only_the_channel_output(model, monkeypatch):
    # if every received token is the same, the answer cannot depend on the image or the prompt any more
    first, second = _inputs(seed=0), _inputs(seed=5)
    monkeypatch.setattr(model, "transmit", lambda sent, *args, **kwargs: torch.ones_like(sent))
    labels = torch.tensor([[9, 2], [11, 2]])
    a = model(**first, labels=labels, links=NOISELESS).logits
    b = model(**second, labels=labels, links=NOISELESS).logits
    torch.testing.assert_close(a, b)
    monkeypatch.undo()
    c = model(**second, labels=labels, links=NOISELESS).logits
    assert not torch.allclose(a, c)


def test_a_tied_head_stays_tied_through_a_round_trip(tmp_path):
    model = TaiChiForConditionalGeneration(TaiChiConfig.tiny(tie_word_embeddings=True))
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    model.save_pretrained(tmp_path)
    loaded = TaiChiForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight)


def test_a_sample_does_not_depend_on_its_batch_padding(model):
    inputs = _inputs(batch=2, prompt=8, seed=2)
    mask = torch.tensor([[1] * 8, [0, 0, 0] + [1] * 5])
    links = {"visual": Link(snr_db=float("inf"), num_tokens=4), "text": Link(snr_db=float("inf"))}
    batched = model.generate(**inputs, attention_mask=mask, links=links, max_new_tokens=4, return_dict_in_generate=True)
    alone = model.generate(pixel_values=inputs["pixel_values"][1:], input_ids=inputs["input_ids"][1:, 3:], links=links,
                           max_new_tokens=4, return_dict_in_generate=True)
    torch.testing.assert_close(batched.scores[0][1:], alone.scores[0], atol=2e-4, rtol=1e-4)


def test_save_and_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = TaiChiForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert not loaded.config.tie_word_embeddings  # the tiny preset's own LM head
    assert loaded.lm_head.weight.data_ptr() != loaded.get_input_embeddings().weight.data_ptr()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    inputs = _inputs()
    torch.testing.assert_close(model(**inputs, links=NOISELESS).logits, loaded(**inputs, links=NOISELESS).logits)


def test_gradients_reach_every_trained_part():
    torch.manual_seed(0)
    model = TaiChiForConditionalGeneration(TaiChiConfig.tiny())
    out = model(**_inputs(), labels=torch.tensor([[9, 2], [11, 2]]), snr_db=10.0)
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    for part in ("projector.layers.0.spline_weight", "ban.q_l.weight", "channel_coder.encoder_in.weight",
                 "token_encoder.layers.0.self_attn.q_proj.lora_B.default.weight", "vision_hr.embedder",
                 "vision_lr.embeddings"):  # fmt: skip
        hit = [name for name in grads if name.startswith(part)]
        assert hit, part
        assert any(grads[name] is not None and grads[name].abs().sum() > 0 for name in hit), part


@pytest.mark.parametrize("overrides", [{"use_ban": False}, {"projector_type": "mlp"}, {"num_transmitter_layers": 0},
                                       {"channel_constellation": "qam16"}])  # fmt: skip
def test_variants(overrides):
    model = TaiChiForConditionalGeneration(TaiChiConfig.tiny(**overrides)).eval()
    assert (model.vision_hr is None) == (overrides.get("use_ban") is False)
    out = model(**_inputs(), labels=torch.tensor([[9, 2], [11, 2]]), snr_db=10.0)
    assert torch.isfinite(out.loss)
    assert model.generate(**_inputs(), snr_db=10.0, max_new_tokens=2).shape[0] == 2


def test_bad_inputs_name_the_argument(model):
    inputs = _inputs()
    cases = [
        (dict(inputs, pixel_values=torch.randn(2, 3, 32, 32)), "pixel_values"),
        (dict(inputs, pixel_values_lr=torch.randn(2, 3, 16, 16)), "pixel_values_lr"),
        (dict(inputs, num_visual_tokens=0), "num_visual_tokens"),
        (dict(inputs, num_visual_tokens=17), "num_visual_tokens"),
        (dict(inputs, snr_db=float("nan")), "snr_db"),
        (dict(inputs, labels=torch.tensor([1, 2])), "labels"),
        (dict(inputs, input_ids=torch.randint(3, 9, (3, 4))), "batch"),
        ({}, "pixel_values"),
        (dict(inputs, visual_embeds=torch.randn(2, 16, 128)), "visual_embeds"),  # not both
        ({"input_ids": inputs["input_ids"], "visual_embeds": torch.randn(2, 16, 64)}, "visual_embeds"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            model(**kwargs)
    with pytest.raises(ValueError, match="task"):
        model.generate(**inputs, task="translate")
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(**inputs, max_new_tokens=0)


def test_from_backbones_splits_a_pretrained_llm_faithfully(tmp_path, monkeypatch):
    from transformers import CLIPVisionModel, ConvNextModel, Qwen2ForCausalLM

    # a pretrained LLM reads its embeddings unscaled; V_h as the paper's ConvNeXt (the tiny preset's is a ResNet)
    convnext = {"model_type": "convnext", "image_size": 64, "patch_size": 4, "num_stages": 2, "hidden_sizes": [32, 64],
                "depths": [1, 1]}  # fmt: skip
    config = TaiChiConfig.tiny(text_embedding_multiplier=1.0, vision_hr_config=convnext)
    torch.manual_seed(1)
    paths = {"vision_lr": tmp_path / "clip", "vision_hr": tmp_path / "convnext", "text": tmp_path / "llm"}
    llm = Qwen2ForCausalLM(config.text_config).eval()
    for path, backbone in ((paths["vision_lr"], CLIPVisionModel(config.vision_lr_config)),
                           (paths["vision_hr"], ConvNextModel(config.vision_hr_config)), (paths["text"], llm)):  # fmt: skip
        backbone.save_pretrained(path)
    config.backbones = {name: str(path) for name, path in paths.items()}
    model = TaiChiForConditionalGeneration.from_backbones(config).eval()
    torch.testing.assert_close(model.vision_lr.embeddings.patch_embedding.weight,
                               CLIPVisionModel.from_pretrained(paths["vision_lr"]).embeddings.patch_embedding.weight)  # fmt: skip
    # with a transparent link, the split LLM's first answer token has the original LLM's logits (LoRA starts at 0)
    monkeypatch.setattr(model, "transmit", lambda sent, *args, **kwargs: sent)
    prompt = torch.randint(3, 512, (2, 6))
    split = model(input_ids=prompt).logits[:, -1]
    torch.testing.assert_close(split, llm(input_ids=prompt).logits[:, -1], atol=1e-4, rtol=1e-4)
    config.backbones = None
    with pytest.raises(ValueError, match="backbones"):
        TaiChiForConditionalGeneration.from_backbones(config)
    scaled = TaiChiConfig.tiny(backbones={name: str(path) for name, path in paths.items()})  # sqrt(d) multiplier
    with pytest.raises(ValueError, match="text_embedding_multiplier"):
        TaiChiForConditionalGeneration.from_backbones(scaled)


def test_auto_classes_load_taichi(model, tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

    import tokcom  # noqa: F401  (registers the families)

    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is TaiChiConfig
    for auto in (AutoModel, AutoModelForImageTextToText):
        assert type(auto.from_pretrained(tmp_path)) is TaiChiForConditionalGeneration


def test_processor_round_trip_and_bad_inputs(tmp_path):
    import numpy as np

    import tokcom.modeling.processing_taichi as processing_taichi
    from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
    from tokcom.training.tokenization import build_word_tokenizer

    assert doctest.testmod(processing_taichi).failed == 0
    tokenizer = build_word_tokenizer(list(DEFAULT_INSTRUCTIONS.values()) + ["is there a cube", "yes", "good film"])
    processor = TaiChiProcessor(tokenizer, hr_image_size=64, lr_image_size=32)
    processor.save_pretrained(tmp_path)
    loaded = TaiChiProcessor.from_pretrained(tmp_path)
    images = [np.full((64, 64, 3), 200, np.uint8), np.zeros((96, 80, 3), np.uint8)]  # mixed sizes are resized
    batch = loaded(task="vqa", images=images, text=["is there a cube ?", "is there a cube"], answers=["yes", "yes"])
    assert batch["pixel_values"].shape == (2, 3, 64, 64) and batch["pixel_values_lr"].shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch["pixel_values"][0], torch.full((3, 64, 64), (200 / 255 - 0.5) / 0.5))
    assert batch["attention_mask"][0, 0] == 1 and batch["attention_mask"][1, 0] == 0  # left padding
    caption = loaded(task="caption", images=images)
    assert caption["input_ids"].shape[0] == 2
    assert "pixel_values" not in loaded(task="sentiment", text="good film")
    for kwargs, name in [
        (dict(task="translate", text="x"), "task"),
        (dict(task="vqa", text="is there a cube"), "images"),
        (dict(task="sentiment", text="good film", images=images[:1]), "text-only"),
        (dict(task="vqa", images=images[:1]), "text"),
        (dict(task="vqa", images=[np.zeros((5000, 5000, 3), np.uint8)], text="x"), "images\\[0\\]"),
        (dict(task="vqa", images=images, text=["a", "b", "c"]), "batch size"),
    ]:
        with pytest.raises(ValueError, match=name):
            loaded(**kwargs)
