"""TokComForAVQA on the tiny preset: shapes, links, losses, LoRA, save/load, errors."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

import tokcom  # noqa: F401  (registers the Auto classes)
from tokcom.modeling import TokComConfig, TokComForAVQA, sliding_window_pool
from tokcom.training.objectives import alignment_loss

BATCH = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TokComForAVQA(TokComConfig.tiny()).eval()


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    return {
        "pixel_values_videos": torch.randn(BATCH, 8, 3, 32, 32, generator=generator),
        "input_values": torch.randn(BATCH, 98, 64, generator=generator),
        "input_ids": torch.randint(3, 256, (BATCH, 7), generator=generator),
        "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 6 + [0]]),
    }


def test_sliding_window_pooling_matches_manual_windows():
    tokens = torch.arange(12, dtype=torch.float32).view(1, 12, 1)
    assert sliding_window_pool(tokens, 3, "avg").flatten().tolist() == [1.5, 5.5, 9.5]
    assert sliding_window_pool(tokens, 4, "max").flatten().tolist() == [2.0, 5.0, 8.0, 11.0]
    assert sliding_window_pool(tokens, 12, "avg").flatten().tolist() == tokens.flatten().tolist()


@pytest.mark.parametrize("num_visual_tokens, num_audio_tokens", [(1, 1), (17, 5), (64, 32), (None, None)])
def test_any_token_length_without_retraining(model, inputs, num_visual_tokens, num_audio_tokens):
    out = model(**inputs, snr_db=10.0, num_visual_tokens=num_visual_tokens, num_audio_tokens=num_audio_tokens)
    s_v = num_visual_tokens or 64
    s_a = num_audio_tokens or 32
    assert out.visual_tokens.shape == (BATCH, s_v, 128)
    assert out.audio_tokens.shape == (BATCH, s_a, 128)
    assert out.text_tokens.shape == (BATCH, 7, 128)
    assert out.logits.shape == (BATCH, s_v + s_a + 7, 256)
    assert out.visual_pooled.shape == out.audio_pooled.shape == out.text_pooled.shape == (BATCH, 128)


def test_each_link_has_its_own_snr(model, inputs):
    clean = model.transmit_and_receive(**inputs, snr_db=float("inf"))
    noisy = model.transmit_and_receive(
        **inputs, snr_db={"visual": -10.0, "audio": float("inf"), "text": float("inf")},
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(noisy["audio"], clean["audio"])
    torch.testing.assert_close(noisy["text"], clean["text"])
    assert (noisy["visual"] - clean["visual"]).abs().mean() > 1e-3
    per_sample = model.transmit_and_receive(**inputs, snr_db=torch.tensor([float("inf"), -10.0, float("inf")]))
    torch.testing.assert_close(per_sample["visual"][0], clean["visual"][0])
    assert (per_sample["visual"][1] - clean["visual"][1]).abs().mean() > 1e-3


def test_task_loss_is_cross_entropy_on_answer_tokens(model, inputs):
    labels = torch.tensor([[10, 2], [11, 2], [12, -100]])
    out = model(**inputs, labels=labels, snr_db=float("inf"))
    start = out.answer_start
    logits = out.logits[:, start : start + 2]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), labels.reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    # prompt + answer positions: the answer's logits depend on the answer prefix only through teacher forcing
    assert out.logits.shape[1] == 64 + 32 + 7 + 2


def test_question_padding_does_not_change_the_answer_logits(model, inputs):
    # the same question with and without extra right padding gives the same next-token logits
    ids = inputs["input_ids"][:1, :5]
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    media = {k: inputs[k][:1] for k in ("pixel_values_videos", "input_values")}
    a = model(**media, input_ids=ids, snr_db=float("inf")).logits[:, -1]
    b = model(**media, input_ids=padded, attention_mask=mask, snr_db=float("inf")).logits[:, -1]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_alignment_loss_is_reconstruction_plus_contrastive(model, inputs):
    out = alignment_loss(model, **inputs, snr_db=10.0, generator=torch.Generator().manual_seed(0))
    assert out.contrastive_loss.shape == (2,)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.contrastive_loss.sum())
    # with identical pooled vectors for every sample, eq. (10) is log(batch)
    assert torch.isfinite(out.loss) and out.reconstruction_loss >= 0
    # eq. (9) relative to the sent tokens' energy, over the real (unmasked) question tokens; noiseless link here
    clean = alignment_loss(model, **inputs, channel_type="none")
    sent = model.get_input_embeddings()(inputs["input_ids"])
    mask = inputs["attention_mask"].unsqueeze(-1)
    expected = ((model.receivers["text"](sent) - sent) ** 2 * mask).sum() / (sent**2 * mask).sum()
    torch.testing.assert_close(clean.reconstruction_loss, expected)


def test_text_is_the_anchor_of_the_contrastive_loss(inputs):
    model = TokComForAVQA(TokComConfig.tiny())
    alignment_loss(model, **inputs, snr_db=10.0).contrastive_loss.sum().backward()
    assert all(p.grad is None for p in model.receivers["text"].parameters())  # eq. (10) does not move G_T
    assert all(p.grad is not None for p in model.receivers["visual"].parameters())


def test_token_level_alignment_pulls_each_received_token_toward_its_target_word(inputs, tmp_path):
    torch.manual_seed(0)
    model = TokComForAVQA(TokComConfig.tiny(receiver_position_embeddings=True))
    receivers = model.receivers
    assert receivers["text"].position_embeddings is None
    assert receivers["visual"].position_embeddings.num_embeddings == 64
    assert receivers["audio"].position_embeddings.num_embeddings == 32
    # the same received content at different indices decodes differently
    same = torch.zeros(1, 5, 128)
    decoded = receivers["visual"](same)
    assert not torch.allclose(decoded[0, 0], decoded[0, 1])
    targets = {"visual_target_ids": torch.randint(3, 200, (BATCH, 6)), "audio_target_ids": torch.randint(3, 200, (BATCH, 4))}
    call = {**inputs, "snr_db": 10.0, "num_visual_tokens": 6, "num_audio_tokens": 4}
    out = alignment_loss(model, **call, **targets, generator=torch.Generator().manual_seed(0))
    assert out.token_alignment_loss.shape == (2,)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.contrastive_loss.sum() + out.token_alignment_loss.sum())
    # ||Y'_m - E_T(w)||^2 / ||E_T(w)||^2 + cross-entropy of w over cosine / tau, by hand for the visual link
    received = model.transmit_and_receive(
        inputs["pixel_values_videos"], snr_db=10.0, num_visual_tokens=6, generator=torch.Generator().manual_seed(0)
    )["visual"]
    table = model.get_input_embeddings().weight
    words = table[targets["visual_target_ids"]]
    expected = ((received - words) ** 2).sum(-1).mean() / (words**2).sum(-1).mean()
    cosine = torch.nn.functional.normalize(received, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T
    logits = (cosine / model.config.contrastive_temperature).flatten(0, 1)
    expected = expected + torch.nn.functional.cross_entropy(logits, targets["visual_target_ids"].flatten())
    torch.testing.assert_close(out.token_alignment_loss[0], expected)
    out.loss.backward()
    assert receivers["visual"].position_embeddings.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="visual_target_ids"):
        alignment_loss(model, **call, visual_target_ids=torch.randint(3, 200, (BATCH, 7)))
    # the index embeddings are saved and reloaded; a config without the field builds plain receivers
    model.save_pretrained(tmp_path)
    loaded = TokComForAVQA.from_pretrained(tmp_path)
    assert torch.equal(loaded.receivers["audio"].position_embeddings.weight, receivers["audio"].position_embeddings.weight)
    assert TokComForAVQA(TokComConfig.tiny()).receivers["visual"].position_embeddings is None


def test_receiver_combines_repeated_words_into_one_token_each(inputs):
    from tokcom.modeling.modeling_tokcom import combine_repeats

    torch.manual_seed(0)
    config = TokComConfig.tiny(receiver_position_embeddings=True, receiver_token_period={"visual": 12, "audio": 24})
    model = TokComForAVQA(config).eval()
    call = {**inputs, "snr_db": 5.0, "generator": torch.Generator().manual_seed(3)}
    links = model.transmit_and_receive(**call, num_visual_tokens=30, num_audio_tokens=10)
    per_token = links["visual_per_token"]
    assert per_token.shape == (BATCH, 30, 128) and links["visual"].shape == (BATCH, 12, 128)
    # output j is the mean of decoded tokens j, j + 12, j + 24 (those that exist)
    torch.testing.assert_close(links["visual"][:, 5], per_token[:, [5, 17, 29]].mean(1))
    torch.testing.assert_close(links["visual"][:, 7], per_token[:, [7, 19]].mean(1))
    torch.testing.assert_close(links["audio"], links["audio_per_token"])  # 10 < 24: nothing to combine
    assert [model.received_length("visual", s) for s in (1, 12, 64)] == [1, 12, 12]
    assert model.received_length("audio") == 24
    out = model(**call, num_visual_tokens=30, num_audio_tokens=10)
    assert out.visual_tokens.shape == (BATCH, 12, 128)
    assert out.logits.shape[1] == 12 + 10 + inputs["input_ids"].shape[1]
    # alignment targets are per sent token, before combining
    targets = torch.randint(3, 200, (BATCH, 30))
    assert alignment_loss(model, **call, num_visual_tokens=30, visual_target_ids=targets).token_alignment_loss.shape == (1,)
    assert combine_repeats(torch.ones(2, 3, 4), period=5).shape == (2, 3, 4)
    for bad in ({"visual": 0}, {"audio": 33}, {"text": 3}, {"visual": 2.5}):
        with pytest.raises(ValueError, match="receiver_token_period"):
            TokComConfig.tiny(receiver_token_period=bad)


def test_stage_one_trains_only_projectors_and_receivers(inputs):
    model = TokComForAVQA(TokComConfig.tiny())
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(("tokcom.visual_projector", "tokcom.audio_projector", "tokcom.receivers"))
    alignment_loss(model, **inputs, snr_db=5.0).loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, name
        else:
            assert parameter.grad is None, name


def test_lora_adapter_is_attached_with_rank_from_config():
    model = TokComForAVQA(TokComConfig.tiny(lora_r=3))
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(3 in p.shape for p in lora.values())
    assert all("language_model" in n for n in lora)
    assert not [n for n, _ in TokComForAVQA(TokComConfig.tiny(use_lora=False)).named_parameters() if "lora_" in n]


def test_lora_adapter_starts_as_the_identity_and_trained_values_survive_reloading(tmp_path):
    model = TokComForAVQA(TokComConfig.tiny()).eval()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)  # peft's start: B = 0
    ids = torch.randint(3, 200, (2, 7))
    with torch.no_grad():
        with_adapter = model.language_model(input_ids=ids).logits
        for p in lora_b:
            p.normal_()
        assert not torch.allclose(model.language_model(input_ids=ids).logits, with_adapter)
    model.save_pretrained(tmp_path)
    loaded = TokComForAVQA.from_pretrained(tmp_path)
    reloaded = [p for n, p in loaded.named_parameters() if "lora_B" in n]
    assert all(torch.equal(a, b) for a, b in zip(lora_b, reloaded))  # loading does not re-zero them


def test_answer_generates_over_the_vocabulary_and_scores_are_probabilities(model, inputs):
    out = model.answer(**inputs, snr_db=20.0, max_new_tokens=3)
    assert out.sequences.shape[0] == BATCH and 1 <= out.sequences.shape[1] <= 3
    assert ((out.scores > 0) & (out.scores <= 1)).all()
    # the first greedy token is the argmax of forward's last prompt logits
    first = model(**inputs, snr_db=float("inf")).logits[:, -1].argmax(-1)
    again = model.answer(**inputs, snr_db=float("inf"), max_new_tokens=1).sequences[:, 0]
    assert torch.equal(first, again)


def test_save_and_load_round_trip_exactly_with_auto_classes(model, inputs, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TokComForAVQA)
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "TokComConfig"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    a = model(**inputs, snr_db=float("inf")).logits
    b = loaded(**inputs, snr_db=float("inf")).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_encoders_start_with_nonzero_position_embeddings():
    model = TokComForAVQA(TokComConfig.tiny())
    assert model.vision_encoder.embeddings.position_embeddings.std() > 0.01
    assert model.audio_encoder.embeddings.position_embeddings.std() > 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_visual_tokens": 0}, "num_visual_tokens"),
        ({"num_visual_tokens": 65}, "num_visual_tokens"),
        ({"num_audio_tokens": 33}, "num_audio_tokens"),
        ({"num_audio_tokens": 2.5}, "num_audio_tokens"),
        ({"snr_db": float("nan")}, "snr_db"),
        ({"snr_db": {"video": 3.0}}, "snr_db"),
        ({"channel_type": "rician"}, "channel_type"),
    ],
)
def test_bad_call_arguments_raise_value_errors(model, inputs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model(**inputs, **kwargs)


def test_bad_shapes_and_configs_raise_value_errors(model, inputs):
    with pytest.raises(ValueError, match="pixel_values_videos"):
        model(pixel_values_videos=torch.randn(3, 3, 32, 32), input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match="input_values"):
        model(input_values=torch.randn(3, 98), input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match="labels"):
        model(**inputs, labels=torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="max_visual_tokens"):
        TokComForAVQA(TokComConfig.tiny(max_visual_tokens=65))
    for field, value in (("max_audio_tokens", 0), ("pooling", "median"), ("contrastive_temperature", 0.0)):
        with pytest.raises(ValueError, match=field):
            TokComConfig.tiny(**{field: value})
