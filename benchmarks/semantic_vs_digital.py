"""Bits versus tokens on one channel: TokCom AVQA's token links against a traditional digital link.

Both sides answer the embedded default's held-out questions (the recipe's test split of the synthetic AVQA world,
as `training/evaluate_tokcom.py` builds it) through the public pipeline only:
- token links: `vqa(clips, snr_db=..., channel_type=..., num_visual_tokens=..., num_audio_tokens=...)`, at maximum
  lengths, at the lengths the allocator picks for the paper's default network (`vqa(clip, network=...)`, Table I),
  and over a sweep of lengths;
- digital link (`tokcom.pipelines.digital_link`): per clip three links (visual, audio, text; one Rayleigh draw
  each, like `TokenChannel`), JPEG frames (RFC 2435 scans), Opus or FLAC audio segments, UTF-8 question;
  fixed 16-QAM + LDPC 1/2, or adaptive MCS (TS 38.214 subset, ideal CSI at the transmitter, BLER target); the base
  station conceals lost packets (`source_coding`) and runs `vqa(decoded, channel_type="none")`. A lost question
  cannot be answered: it counts as wrong.

Steps:
  1. held-out clips; clean accuracy of every source setting (no channel);
  2. accuracy vs SNR (-10..20 dB, AWGN and Rayleigh): token max / allocated, digital fixed / adaptive;
  3. accuracy vs channel uses at 0, 10, 20 dB: token length sweep, digital source x MCS sweep, Shannon bound;
  4. headline: channel uses each scheme needs for 95% of its best accuracy at each SNR;
  5. agreement of the abstraction with the full Sionna chain on a subset.

Digital points come from the calibrated block-error abstraction (`mode: "abstraction"`) except step 5
(`mode: "full"`). Writes `results/semantic_vs_digital/semantic_vs_digital.json` and PNGs.

    python benchmarks/semantic_vs_digital.py [--num-questions 192] [--full-chain-questions 192] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "results" / "semantic_vs_digital"
SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SWEEP_SNRS_DB = (0.0, 10.0, 20.0)
CHANNELS = ("awgn", "rayleigh")
TOKEN_LENGTHS = ((4, 2), (8, 4), (16, 8), (32, 16), (64, 32))
DEFAULT_SOURCE = (75, ("opus", 12.0))  # JPEG quality 75; Opus 12 kbit/s ~ AMR-WB 12.65 kbit/s
# the digital side's sweep: JPEG quality x audio codec/bitrate [kbit/s] (FLAC: lossless)
SOURCES = (
    (10, ("opus", 6.0)), (10, ("opus", 24.0)), (50, ("opus", 6.0)), (50, ("opus", 24.0)),
    (90, ("opus", 6.0)), (90, ("opus", 24.0)), (10, ("opus", 48.0)), (90, ("flac", 0.0)), DEFAULT_SOURCE,
)  # fmt: skip
SAMPLING_RATE = 16000
# Adaptive MCS without retransmissions: a clip needs about 20 blocks, so the 10% BLER of the CQI definition
# (TS 38.214 Sec. 5.2.2.1, meant for HARQ) loses a packet of most clips. The sweeps use 1%; both are shown vs SNR.
TARGET_BLER = 0.01


# ---------------------------------------------------------------------------------------------
# 1. held-out clips and source coding
# ---------------------------------------------------------------------------------------------


def held_out(num_questions: int):
    """(scenes, rows) of the default checkpoint's test split, first `num_questions` questions."""
    from tokcom.defaults import default_model_path
    from tokcom.training.data.synthetic_avqa import SyntheticAVQAConfig, generate_split
    from tokcom.training.evaluate_tokcom import model_recipe

    recipe = model_recipe(default_model_path())
    data = recipe.get("data", {})
    config = SyntheticAVQAConfig(questions_per_scene=int(data.get("questions_per_scene", 4)))
    counts = [int(data.get(f"{name}_scenes", d)) for name, d in zip(("train", "validation", "test"), (12000, 500, 1000))]
    scenes, rows = generate_split("test", *counts, seed=int(recipe.get("seed", 0)), config=config)
    return scenes, rows[:num_questions]


class Source:
    """One source setting: JPEG quality and audio codec; encodes each scene once (packets + clean decode)."""

    def __init__(self, quality: int, audio: tuple[str, float], scenes):
        from tokcom.pipelines.source_coding import AudioCodec, JpegCodec

        self.quality, self.audio = quality, audio
        self.jpeg = JpegCodec(quality)
        self.codec = AudioCodec(audio[0], bitrate_kbps=audio[1] or 12.0)
        self.scenes, self.cache = scenes, {}

    @property
    def name(self) -> str:
        audio = "flac" if self.audio[0] == "flac" else f"opus{self.audio[1]:g}k"
        return f"jpeg{self.quality}+{audio}"

    def packets(self, scene: int):
        if scene not in self.cache:
            video = self.scenes.video[scene]
            frames = [self.jpeg.encode(frame) for frame in video]
            audio, headers = self.codec.encode(self.scenes.audio[scene], SAMPLING_RATE)
            self.cache[scene] = (frames, audio, headers)
        return self.cache[scene]

    def receive(self, scene: int, frames, audio) -> dict:
        """Received packets (None = lost) -> the clip the base station decodes (concealed)."""
        from tokcom.pipelines.source_coding import conceal_frames

        shape = self.scenes.video[scene].shape[1:]
        video = conceal_frames([self.jpeg.decode(p, shape) for p in frames], shape)
        headers = self.packets(scene)[2]
        waveform = self.codec.decode(audio, headers, SAMPLING_RATE, self.scenes.audio[scene].size)
        return {"video": video, "audio": {"array": waveform, "sampling_rate": SAMPLING_RATE}}


def clip(scenes, row, video=None, audio=None) -> dict:
    scene = row["scene_index"]
    return {
        "video": scenes.video[scene] if video is None else video,
        "audio": {"array": scenes.audio[scene], "sampling_rate": SAMPLING_RATE} if audio is None else audio,
        "question": row["question"],
    }


# ---------------------------------------------------------------------------------------------
# 2.-3. the two sides
# ---------------------------------------------------------------------------------------------


def token_point(vqa, scenes, rows, snr_db, channel_type, lengths, seed) -> dict:
    clips = [clip(scenes, row) for row in rows]
    out = vqa(clips, snr_db=float(snr_db), channel_type=channel_type, num_visual_tokens=lengths[0],
              num_audio_tokens=lengths[1], seed=seed, batch_size=32)  # fmt: skip
    correct = [o["answer"] == row["anser"] for o, row in zip(out, rows)]
    return {"accuracy": float(np.mean(correct)), "channel_uses": float(np.mean([o["transmission"]["channel_uses"] for o in out])),
            "tokens": list(lengths), "mode": "token channel (TokenChannel)"}  # fmt: skip


class DigitalSide:
    """Sends clips over the digital link and scores the base station's answers on the decoded media."""

    def __init__(self, vqa, scenes, rows, seed: int):
        self.vqa, self.scenes, self.rows, self.seed = vqa, scenes, rows, seed
        self.clean: dict = {}  # source name -> answers with no packet lost
        self.links: dict = {}  # (modulation, code_rate) -> DigitalLink (keeps its Sionna coders)

    def answers(self, source: Source, decoded: dict[int, dict]) -> dict[int, str]:
        indices = sorted(decoded)
        answers = {}
        for start in range(0, len(indices), 256):
            chunk = indices[start : start + 256]
            clips = [{**decoded[i], "question": self.rows[i]["question"]} for i in chunk]
            out = self.vqa(clips, channel_type="none", seed=self.seed, batch_size=32)
            answers.update({i: o["answer"] for i, o in zip(chunk, out)})
        return answers

    def clean_answers(self, source: Source) -> dict[int, str]:
        if source.name not in self.clean:
            decoded = {}
            for i, row in enumerate(self.rows):
                frames, audio, _ = source.packets(row["scene_index"])
                decoded[i] = source.receive(row["scene_index"], frames, audio)
            self.clean[source.name] = self.answers(source, decoded)
        return self.clean[source.name]

    def point(self, source: Source, snr_db: float, channel_type: str, mcs: str, mode="abstraction",
              target_bler: float = 0.1, rows=None) -> dict:  # fmt: skip
        """`mcs`: `"fixed"` (16-QAM + LDPC 1/2) or `"adaptive"`. Returns accuracy, channel uses, losses."""
        from tokcom.pipelines.digital_link import DigitalLink, select_mcs

        rows = self.rows if rows is None else rows
        generator = torch.Generator().manual_seed(self.seed)
        # 1. each clip's three links, with their own fading draw (ideal CSI at the transmitter for adaptive MCS)
        sent = []  # (row index, link, packets)
        for i, row in enumerate(rows):
            frames, audio, _ = source.packets(row["scene_index"])
            question = row["question"].encode("utf-8")
            sent += [(i, "visual", frames), (i, "audio", audio), (i, "text", [question])]
        if channel_type == "rayleigh":
            parts = torch.randn((len(sent), 2), generator=generator, dtype=torch.float64) / np.sqrt(2.0)
            gains = parts.pow(2).sum(-1).numpy()
        else:
            gains = np.ones(len(sent))
        with np.errstate(divide="ignore"):
            snr_eff_db = snr_db + 10 * np.log10(gains)
        # 2. MCS per link: fixed, or the calibrated choice at the link's effective SNR
        groups: dict = {}
        for j, eff in enumerate(snr_eff_db):
            key = ("16qam", 0.5) if mcs == "fixed" else select_mcs(max(float(eff), -30.0), target_bler)[1:]
            groups.setdefault(key, []).append(j)
        received, uses, blocks, errors = [None] * len(sent), np.zeros(len(rows)), 0, 0
        for (modulation, code_rate), members in groups.items():
            link = self.links.setdefault((modulation, code_rate), DigitalLink(modulation, code_rate))
            out = link.transmit([sent[j][2] for j in members], snr_db, channel_type=channel_type, mode=mode,
                                generator=generator, gains=gains[members])  # fmt: skip
            for j, packets, channel_uses in zip(members, out.packets, out.channel_uses):
                received[j] = packets
                uses[sent[j][0]] += channel_uses
            blocks, errors = blocks + sum(out.num_blocks), errors + sum(out.block_errors)
        # 3. base station: concealment, then the same model on the decoded media (lost question: wrong)
        per_row: dict = {}
        for (i, link_name, _), packets in zip(sent, received):
            per_row.setdefault(i, {})[link_name] = packets
        clean = self.clean_answers(source) if rows is self.rows else None
        decoded, answers, lost_questions = {}, {}, 0
        for i, links in per_row.items():
            if links["text"][0] is None:
                answers[i], lost_questions = None, lost_questions + 1
            elif clean is not None and all(p is not None for p in links["visual"] + links["audio"]):
                answers[i] = clean[i]  # nothing lost: the noiseless answer
            else:
                decoded[i] = source.receive(rows[i]["scene_index"], links["visual"], links["audio"])
        answers.update(self.answers(source, decoded))
        correct = [answers[i] == row["anser"] for i, row in enumerate(rows)]
        return {
            "accuracy": float(np.mean(correct)), "channel_uses": float(uses.mean()), "block_error_rate": errors / max(blocks, 1),
            "blocks": blocks, "lost_questions": lost_questions, "source": source.name, "mcs": mcs, "mode": mode,
            "payload_bits": float(np.mean([payload_bits(source, row) for row in rows])),
        }  # fmt: skip


def payload_bits(source: Source, row) -> int:
    frames, audio, _ = source.packets(row["scene_index"])
    return 8 * (sum(map(len, frames)) + sum(map(len, audio)) + len(row["question"].encode("utf-8")))


# ---------------------------------------------------------------------------------------------
# 4. headline and plots
# ---------------------------------------------------------------------------------------------


def uses_for_fraction(points: list[dict], fraction: float = 0.95, reference: float | None = None) -> dict:
    """Fewest channel uses among `points` reaching `fraction` of `reference` (default: their own best accuracy).
    A scheme whose best accuracy is below 0.1 (it does not work at this SNR) gets `channel_uses: None`."""
    best = max(p["accuracy"] for p in points)
    target = fraction * (best if reference is None else reference)
    ok = [p for p in points if p["accuracy"] >= target]
    if best < 0.1 or not ok:
        return {"best_accuracy": best, "target_accuracy": target, "channel_uses": None, "accuracy": None,
                "setting": None}  # fmt: skip
    chosen = min(ok, key=lambda p: p["channel_uses"])
    return {"best_accuracy": best, "target_accuracy": target, "channel_uses": chosen["channel_uses"],
            "accuracy": chosen["accuracy"], "setting": chosen.get("tokens") or f"{chosen['source']} {chosen['mcs']}"}  # fmt: skip


def headline(sweep: dict) -> dict:
    """Step 4 at one (channel, SNR): per scheme, the channel uses for 95% of its own best accuracy (`own`) and for
    95% of the best accuracy any scheme reached (`common`), with ratios to the token links."""
    common = max(p["accuracy"] for name, points in sweep.items() if name != "shannon bound" for p in points)
    entry = {}
    for kind, reference in (("own", None), ("common", common)):
        entry[kind] = {name: uses_for_fraction(points, 0.95, reference) for name, points in sweep.items()}
        token_uses = entry[kind]["token"]["channel_uses"]
        for value in entry[kind].values():
            ok = value["channel_uses"] is not None and token_uses is not None
            value["ratio_to_token"] = value["channel_uses"] / token_uses if ok else None
    return entry


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"token max": "o-", "token allocated": "d:", "digital fixed": "s--", "digital adaptive": "^-.",
              "digital adaptive (BLER 0.1)": "v:"}  # fmt: skip
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, channel in zip(axes, CHANNELS):
        for name, style in styles.items():
            curve = result["accuracy_vs_snr"][channel][name]
            axis.plot(result["snr_db"], [p["accuracy"] for p in curve], style, label=f"{name} ({curve[0]['label']})")
        axis.set_title(f"{channel.upper()} (digital: {result['default_source']}, abstraction)")
        axis.set_xlabel("SNR [dB] (Es/N0 per complex symbol)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(OUT_DIR / "accuracy_vs_snr.png", dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(2, 3, figsize=(13, 7), sharey=True)
    for row, channel in enumerate(CHANNELS):
        for col, snr in enumerate(SWEEP_SNRS_DB):
            axis = axes[row, col]
            sweep = result["accuracy_vs_channel_uses"][channel][f"{snr:g}"]
            for name, style in (("token", "o-"), ("digital fixed", "s"), ("digital adaptive", "^"), ("shannon bound", "x")):
                points = sorted(sweep[name], key=lambda p: p["channel_uses"])
                axis.plot([p["channel_uses"] for p in points], [p["accuracy"] for p in points], style,
                          label=name, alpha=0.8)  # fmt: skip
            axis.set_xscale("log")
            axis.set_title(f"{channel.upper()}, {snr:g} dB")
            axis.grid(alpha=0.3)
            if row == 1:
                axis.set_xlabel("channel uses per question (complex symbols)")
        axes[row, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(OUT_DIR / "accuracy_vs_channel_uses.png", dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def run(num_questions: int, full_chain_questions: int, seed: int) -> dict:
    import tokcom  # noqa: F401  registers "token-comm-vqa"
    from transformers import pipeline

    from tokcom.demo import network_for_model
    from tokcom.pipelines.digital_link import shannon_channel_uses

    began = time.time()
    # one thread: on a CPU shared with other jobs, two threads ran the model 3x slower and BP decoding 4x slower
    torch.set_num_threads(1)
    vqa = pipeline("token-comm-vqa")
    scenes, rows = held_out(num_questions)
    config = vqa.model.config
    max_lengths = (config.max_visual_tokens, config.max_audio_tokens)
    allocated = vqa(clip(scenes, rows[0]), network=network_for_model(), seed=seed)["transmission"]
    allocated_lengths = (allocated["visual"]["tokens"], allocated["audio"]["tokens"])
    digital = DigitalSide(vqa, scenes, rows, seed)
    sources = {setting: Source(*setting, scenes) for setting in SOURCES}
    default = sources[DEFAULT_SOURCE]
    # 1. clean accuracy per source setting, and the token links without noise
    clean = {s.name: float(np.mean([digital.clean_answers(s)[i] == r["anser"] for i, r in enumerate(rows)]))
             for s in sources.values()}  # fmt: skip
    clean_tokens = token_point(vqa, scenes, rows, 20.0, "none", max_lengths, seed)["accuracy"]
    print(f"[{time.time() - began:.0f}s] clean accuracy: tokens {clean_tokens:.3f}, digital {clean}", flush=True)
    # 2. accuracy vs SNR
    vs_snr = {}
    for channel in CHANNELS:
        curves = vs_snr[channel] = {"token max": [], "token allocated": [], "digital fixed": [], "digital adaptive": [],
                                    "digital adaptive (BLER 0.1)": []}  # fmt: skip
        for snr in SNRS_DB:
            for name, lengths in (("token max", max_lengths), ("token allocated", allocated_lengths)):
                point = token_point(vqa, scenes, rows, snr, channel, lengths, seed)
                curves[name].append({**point, "snr_db": snr, "label": f"s_v={lengths[0]}, s_a={lengths[1]}"})
            for name, mcs, target in (("digital fixed", "fixed", TARGET_BLER), ("digital adaptive", "adaptive", TARGET_BLER),
                                      ("digital adaptive (BLER 0.1)", "adaptive", 0.1)):  # fmt: skip
                point = digital.point(default, snr, channel, mcs, target_bler=target)
                label = "16-QAM LDPC 1/2" if mcs == "fixed" else f"MCS for BLER {target:g}"
                curves[name].append({**point, "snr_db": snr, "label": label, "target_bler": target})
        print(f"[{time.time() - began:.0f}s] {channel}: " + ", ".join(
            f"{k} {[round(p['accuracy'], 3) for p in v]}" for k, v in curves.items()), flush=True)  # fmt: skip
    # 3. accuracy vs channel uses at fixed SNRs
    vs_uses, headlines = {}, {}
    for channel in CHANNELS:
        vs_uses[channel], headlines[channel] = {}, {}
        for snr in SWEEP_SNRS_DB:
            at_max = vs_snr[channel]["token max"][SNRS_DB.index(snr)]  # already measured
            sweep = {"token": [at_max if tuple(lengths) == tuple(max_lengths) else
                               token_point(vqa, scenes, rows, snr, channel, lengths, seed) for lengths in TOKEN_LENGTHS]}
            for mcs in ("fixed", "adaptive"):
                sweep[f"digital {mcs}"] = [digital.point(s, snr, channel, mcs, target_bler=TARGET_BLER) for s in sources.values()]
            sweep["shannon bound"] = [
                {"channel_uses": float(np.mean([shannon_channel_uses(payload_bits(s, r), snr, channel) for r in rows])),
                 "accuracy": clean[s.name], "source": s.name, "mcs": "capacity", "mode": "bound (error-free at capacity)"}
                for s in sources.values()
            ]  # fmt: skip
            vs_uses[channel][f"{snr:g}"] = sweep
            # 4. headline ratio
            headlines[channel][f"{snr:g}"] = entry = headline(sweep)
            print(f"[{time.time() - began:.0f}s] {channel} {snr:g} dB: {json.dumps(entry['own'])}", flush=True)
    # 5. abstraction vs full chain on a subset
    agreement = []
    subset = rows[:full_chain_questions]
    for channel, snr in (("awgn", 6.5), ("awgn", 7.0), ("rayleigh", 10.0), ("rayleigh", 20.0)):
        pair = {m: digital.point(default, snr, channel, "fixed", mode=m, rows=subset) for m in ("full", "abstraction")}
        se = np.sqrt(max(pair["abstraction"]["accuracy"] * (1 - pair["abstraction"]["accuracy"]), 1e-9) / len(subset))
        agreement.append({"channel_type": channel, "snr_db": snr, "questions": len(subset), **{
            f"{m}_{k}": pair[m][k] for m in pair for k in ("accuracy", "block_error_rate", "blocks", "lost_questions")},
            "accuracy_standard_error": float(np.sqrt(2) * se)})  # fmt: skip
        print(f"[{time.time() - began:.0f}s] full vs abstraction: {agreement[-1]}", flush=True)
    return {
        "command": f"python benchmarks/semantic_vs_digital.py --num-questions {num_questions} "
                   f"--full-chain-questions {full_chain_questions} --seed {seed}",
        "model": "embedded default (pipeline('token-comm-vqa'))",
        "questions": len(rows), "split": "test (held-out, recipe seeds)", "snr_db": list(SNRS_DB),
        "snr_convention": "Es/N0 per complex symbol, unit-energy symbols, no = 10**(-snr_db/10), on both sides",
        "token_dim": int(config.text_config.hidden_size) if hasattr(config, "text_config") else None,
        "max_lengths": list(max_lengths), "allocated_lengths": list(allocated_lengths),
        "default_source": default.name, "clean_accuracy": {"tokens (no channel)": clean_tokens, **clean},
        "accuracy_vs_snr": vs_snr, "accuracy_vs_channel_uses": vs_uses, "headline_95": headlines,
        "abstraction_vs_full_chain": agreement, "seconds": time.time() - began,
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-questions", type=int, default=192)
    parser.add_argument("--full-chain-questions", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", action="store_true", help="print the README tables of the saved result")
    args = parser.parse_args(argv)
    if args.tables:
        print(markdown_tables(json.loads((OUT_DIR / "semantic_vs_digital.json").read_text())))
        return 0
    if args.num_questions < 1 or args.full_chain_questions < 1:
        raise ValueError("`--num-questions` and `--full-chain-questions` must be >= 1.")
    result = run(args.num_questions, args.full_chain_questions, args.seed)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "semantic_vs_digital.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result)
    print(f"wrote {OUT_DIR} in {result['seconds']:.0f} s")
    return 0



def markdown_tables(result: dict) -> str:
    """The README's tables from a result dict (`python benchmarks/semantic_vs_digital.py --tables`)."""
    lines = []
    for channel in CHANNELS:
        curves = result["accuracy_vs_snr"][channel]
        lines += [f"\n**{channel.upper()}**: accuracy (mean channel uses per question)\n",
                  "| scheme | " + " | ".join(f"{s:g} dB" for s in result["snr_db"]) + " |",
                  "|---" * (len(result["snr_db"]) + 1) + "|"]  # fmt: skip
        for name, curve in curves.items():
            cells = [f"{p['accuracy']:.3f} ({p['channel_uses']:.0f})" for p in curve]
            lines.append(f"| {name} ({curve[0]['label']}) | " + " | ".join(cells) + " |")
    def cell(e):
        if e["channel_uses"] is None:
            return f"{'fails' if e['best_accuracy'] < 0.1 else 'not reached'} (best {e['best_accuracy']:.3f})"
        ratio = "" if e["ratio_to_token"] is None else f", x{e['ratio_to_token']:.2f}"
        return f"{e['channel_uses']:.0f} @ {e['accuracy']:.3f}{ratio}"

    for kind, title in (("own", "95% of each scheme's own best accuracy"),
                        ("common", "95% of the best accuracy any scheme reached at that SNR")):  # fmt: skip
        lines += [f"\n**Channel uses per question for {title}** (accuracy reached, ratio to the token links)\n",
                  "| channel | SNR | token | digital fixed | digital adaptive | Shannon bound (digital payload) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for channel in CHANNELS:
            for snr, entry in result["headline_95"][channel].items():
                names = ("token", "digital fixed", "digital adaptive", "shannon bound")
                lines.append(f"| {channel} | {snr} dB | " + " | ".join(cell(entry[kind][n]) for n in names) + " |")
    lines += ["\n**Abstraction vs full Sionna chain** (fixed 16-QAM + LDPC 1/2, default source)\n",
              "| channel | SNR | questions | accuracy full | accuracy abstraction | 2-sample s.e. | BLER full | BLER abstraction |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for a in result["abstraction_vs_full_chain"]:
        lines.append(f"| {a['channel_type']} | {a['snr_db']:g} dB | {a['questions']} | {a['full_accuracy']:.3f} | "
                     f"{a['abstraction_accuracy']:.3f} | {a['accuracy_standard_error']:.3f} | "
                     f"{a['full_block_error_rate']:.3f} ({a['full_blocks']}) | {a['abstraction_block_error_rate']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
