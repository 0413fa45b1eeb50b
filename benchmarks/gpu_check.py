"""The CUDA path of every family, checked and timed on a GPU machine (CI has none: on a CPU-only machine this
script says so and exits 0 without writing anything).

For TokCom AVQA (the embedded default) and TaiChi (tiny config, random weights; the installed `taichi-tiny` when
there is one), and the UniToCom tokenizers (tiny config):
- device placement: `model.to("cuda")`, a forward pass whose outputs all sit on the GPU;
- bf16: the model cast to bfloat16 answers; the share of greedy answers that equal the fp32 GPU answers;
- a training step: fp32 weights, `torch.autocast("cuda", torch.bfloat16)`, backward and AdamW; the loss is finite,
  every gradient finite, and the weights moved;
- throughput: `pipeline("token-comm-vqa", device=0)` on the same inputs one by one and in batches of
  `--batch-size`, samples/s of each and their ratio (measured in this run), and the same on the CPU for scale.

    python benchmarks/gpu_check.py [--num-samples 128] [--batch-size 32] [--output results/gpu_check.json]
        [--only taichi tokcom_avqa unitocom_tokenizer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import tokcom  # noqa: E402, F401  registers the tasks

ROOT = Path(__file__).resolve().parent.parent


def on_cuda(value) -> bool:
    """Every tensor inside `value` (a ModelOutput, dict, tuple or tensor) is on a CUDA device."""
    if isinstance(value, torch.Tensor):
        return value.is_cuda
    if isinstance(value, dict):
        return all(on_cuda(v) for v in value.values() if v is not None)
    if isinstance(value, (tuple, list)):
        return all(on_cuda(v) for v in value if v is not None)
    return True


def training_step(model, batch: dict) -> dict:
    """One AdamW step under bf16 autocast on fp32 weights: loss, finiteness, and how far the weights moved."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    finite_grads = all(torch.isfinite(p.grad).all().item() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    moved = sum(int(not torch.equal(before[n], p.detach())) for n, p in model.named_parameters() if n in before)
    model.eval()
    return {"loss": float(loss), "loss_finite": bool(torch.isfinite(loss)), "gradients_finite": finite_grads,
            "tensors_moved": moved, "tensors_trainable": len(before)}  # fmt: skip


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def check_taichi(num_samples: int) -> dict:
    from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import TaiChiProcessor
    from tokcom.modeling.decoding import answer_labels
    from tokcom.training.taichi_corpus import TaiChiCorpus

    installed = ROOT / "tokcom" / "checkpoints" / "taichi-tiny"
    corpus = TaiChiCorpus.build({"test_scenes": max(8, num_samples // 4), "questions_per_scene": 4}, "test")
    if (installed / "config.json").is_file():
        model, processor, source = TaiChiForConditionalGeneration.from_pretrained(installed), TaiChiProcessor.from_pretrained(installed), "taichi-tiny"
    else:
        from tokcom.training.tokenization import build_word_tokenizer

        config = TaiChiConfig.tiny()
        tokenizer = build_word_tokenizer(corpus.texts(), max_vocab_size=config.text_config.vocab_size)
        model, processor, source = TaiChiForConditionalGeneration(config), TaiChiProcessor(tokenizer, 64, 32), "random tiny"
    rows = corpus.questions[:num_samples]
    batch = processor(task="vqa", images=corpus.images[[r["image_index"] for r in rows]],
                      text=[r["question"] for r in rows])  # fmt: skip
    batch = dict(batch)
    labels = answer_labels(processor.tokenizer, [r["answer"] for r in rows])
    link = {"snr_db": 20.0, "channel_type": "awgn"}
    result = {"weights": source}
    cuda = torch.device("cuda")
    model = model.to(cuda).eval()
    with torch.no_grad():
        out = model(**to_device(batch, cuda), labels=labels.to(cuda), **link,
                    generator=torch.Generator(cuda).manual_seed(0))  # fmt: skip
    result["outputs_on_cuda"] = on_cuda(out)
    ideal = {"snr_db": float("inf"), "channel_type": "none"}
    timings = {}
    answers = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        inputs = to_device(batch, cuda)
        inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
        torch.cuda.synchronize()
        start = time.perf_counter()
        sequences = model.generate(**inputs, **ideal, task="vqa")
        torch.cuda.synchronize()
        timings[str(dtype)] = time.perf_counter() - start
        answers[str(dtype)] = processor.batch_decode(sequences)
    agree = sum(a == b for a, b in zip(answers["torch.float32"], answers["torch.bfloat16"]))
    result["bf16_answers_equal_fp32"] = f"{agree}/{len(rows)}"
    result["generate_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    model = model.float()
    # the training engine passes CPU generators (exact resume); the channel draws on the generator's device
    result["training_step"] = training_step(model, {**to_device(batch, cuda), "labels": labels.to(cuda), **link,
                                                    "generator": torch.Generator().manual_seed(0)})  # fmt: skip
    return result


def check_taichi_engine() -> dict:
    """Every TaiChi stage through the training engine (accelerate puts it on the GPU), two steps each."""
    import tempfile

    from tokcom.training.engine import train

    stage = {"steps": 2, "batch_size": 8, "learning_rate": 1e-3}
    recipe = {"family": "taichi", "seed": 0, "num_threads": 2,
              "data": {"train_scenes": 16, "validation_scenes": 4, "test_scenes": 4, "questions_per_scene": 2,
                       "sentiment_sentences": 16},
              "stages": {"pretrain_vision": stage, "pretrain_text": stage, "pretrain": {**stage, "word_alignment": 1.0},
                         "sft": {**stage, "train_llm": "full", "random_token_lengths": True}, "separate_coding": stage,
                         "joint_coding": {**stage, "tasks": {"vqa": 1.0, "caption": 1.0, "sentiment": 1.0}}}}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        train(recipe, folder)
        stages = json.loads((Path(folder) / "training_log.json").read_text())["stages"]
    return {"stages_finished": [s["stage"] for s in stages if s.get("finished")],
            "seconds": {s["stage"]: round(s["seconds"], 2) for s in stages}}


def check_tokcom(num_samples: int, batch_size: int) -> dict:
    from transformers import pipeline

    from tokcom.defaults import default_model_path

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from batched_throughput import make_clips

    clips = make_clips(num_samples)
    result = {}
    for device in ("cuda", "cpu"):
        vqa = pipeline("token-comm-vqa", model=str(default_model_path()), device=device)
        if device == "cuda":
            result["model_on_cuda"] = all(p.is_cuda for p in vqa.model.parameters())
        kwargs = {"snr_db": float("inf")}
        vqa(clips[:batch_size], batch_size=batch_size, **kwargs)  # warm-up
        start = time.perf_counter()
        single = [vqa(clip, **kwargs) for clip in clips]
        loop = time.perf_counter() - start
        start = time.perf_counter()
        batched = vqa(clips, batch_size=batch_size, **kwargs)
        together = time.perf_counter() - start
        same = sum(a["answer"] == b["answer"] for a, b in zip(single, batched))
        result[device] = {"per_sample_samples_per_s": round(len(clips) / loop, 1),
                          "batched_samples_per_s": round(len(clips) / together, 1),
                          "ratio": round(loop / together, 2), "answers_equal": f"{same}/{len(clips)}"}  # fmt: skip
    result["bf16_cast"] = str(next(vqa.model.to("cuda", torch.bfloat16).parameters()).dtype)
    return result


def check_unitocom_tokenizer() -> dict:
    from tokcom.modeling import UniToComTokenizerConfig, UniToComTokenizerModel

    config = UniToComTokenizerConfig.tiny()
    model = UniToComTokenizerModel(config).to("cuda")
    images = torch.rand(8, 3, config.image_size, config.image_size, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(pixel_values=images)
    loss = out.loss if getattr(out, "loss", None) is not None else out[0]
    loss.backward()
    return {"outputs_on_cuda": on_cuda(out), "loss_finite": bool(torch.isfinite(loss)),
            "gradients_finite": all(torch.isfinite(p.grad).all().item() for p in model.parameters() if p.grad is not None)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=str(ROOT / "results" / "gpu_check.json"))
    parser.add_argument("--only", nargs="*", default=None, help="run these checks only (taichi, taichi_engine, tokcom_avqa, unitocom_tokenizer)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device: nothing to check here (run this on a GPU machine).")
        return 0
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
              "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])}  # fmt: skip
    import transformers

    report["transformers"] = transformers.__version__
    for name, check in (("taichi", lambda: check_taichi(args.num_samples)), ("taichi_engine", check_taichi_engine),
                        ("tokcom_avqa", lambda: check_tokcom(args.num_samples, args.batch_size)),
                        ("unitocom_tokenizer", check_unitocom_tokenizer)):  # fmt: skip
        if args.only is not None and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            report[name] = check()
        except Exception:  # a failed check is reported, the others still run
            report[name] = {"error": traceback.format_exc(limit=4)[-1500:]}
        report[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(report[name]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
