"""TokComProcessor and the word tokenizer: shapes, round trip, clear errors."""

import numpy as np
import pytest
import torch

from tokcom.modeling.processing_tokcom import TokComProcessor, default_feature_extractor
from tokcom.training.tokenization import build_word_tokenizer


@pytest.fixture(scope="module")
def processor():
    tokenizer = build_word_tokenizer(["how many instruments are sounding?", "two", "yes", "drum"])
    return TokComProcessor(default_feature_extractor(), tokenizer)


def test_processor_outputs_model_inputs(processor):
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, (2, 12, 48, 48, 3), dtype=np.uint8)  # other frame count and size
    audio = [rng.standard_normal(16000).astype(np.float32) * 0.1, np.zeros(8000, np.float32)]
    batch = processor(
        text=["how many instruments are sounding?", "drum?"], videos=videos, audio=audio, sampling_rate=16000,
        answers=["two", "yes"],
    )  # fmt: skip
    assert batch["pixel_values_videos"].shape == (2, 8, 3, 32, 32)
    assert batch["pixel_values_videos"].min() >= -1.0 - 1e-5 and batch["pixel_values_videos"].max() <= 1.0 + 1e-5
    assert batch["input_values"].shape == (2, 98, 64)
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1].sum() == 2
    eos = processor.tokenizer.eos_token_id
    assert batch["labels"][:, -1].tolist() == [eos, eos]
    assert processor.batch_decode(torch.tensor([[processor.tokenizer.convert_tokens_to_ids("two"), eos]])) == ["two"]


def test_processor_round_trips(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = TokComProcessor.from_pretrained(tmp_path)
    assert loaded.num_frames == 8 and loaded.feature_extractor.num_mel_bins == 64
    assert loaded.tokenizer("two yes")["input_ids"] == processor.tokenizer("two yes")["input_ids"]


def test_processor_bad_inputs(processor):
    with pytest.raises(ValueError, match="sampling_rate"):
        processor(audio=[np.zeros(100, np.float32)], sampling_rate=44100)
    with pytest.raises(ValueError, match="videos"):
        processor(videos=[np.zeros((0, 32, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="audio"):
        processor(audio=[np.zeros((2, 100), np.float32)], sampling_rate=16000)
    with pytest.raises(ValueError, match="batch size"):
        processor(text=["two"], answers=["yes", "no"])
    with pytest.raises(ValueError, match="Unknown keyword"):
        processor(text=["two"], images=[1])
    with pytest.raises(ValueError, match="max_vocab_size"):
        build_word_tokenizer([" ".join(f"w{i}" for i in range(300))])


def test_torch_filterbanks_equal_the_ast_extractor_for_a_whole_batch():
    """The processor's batched torch filterbank (issue 17, throughput) gives ASTFeatureExtractor's numpy-path
    features to float32 rounding, for any length (cut at max_length frames, zero rows after short clips), silence,
    a DC offset and full-scale noise."""
    from tokcom.modeling.processing_tokcom import ast_filterbanks

    extractor = default_feature_extractor()
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (16000, 15999, 400, 559, 8000, 20000, 100000)]
    waves += [np.zeros(16000, np.float32), (0.5 + 1e-3 * np.sin(np.arange(16000) * 0.01)).astype(np.float32),
              np.clip(rng.standard_normal(16000), -1, 1).astype(np.float32)]  # fmt: skip
    reference = extractor(waves, sampling_rate=16000, return_tensors="pt")["input_values"]
    batched = ast_filterbanks(waves, extractor)
    assert batched.shape == reference.shape == (len(waves), 98, 64) and batched.dtype == torch.float32
    assert (batched - reference).abs().max() < 1e-5
    one_by_one = torch.cat([ast_filterbanks([wave], extractor) for wave in waves])
    assert (one_by_one - batched).abs().max() < 1e-6  # a clip's features hardly depend on its batch (float32 sums)
