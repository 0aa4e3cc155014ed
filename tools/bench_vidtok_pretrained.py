"""Benchmark the released-size VidTok models: encode / decode speed and peak memory.

    uv run python tools/bench_vidtok_pretrained.py --device cpu --repeats 1
    uv run python tools/bench_vidtok_pretrained.py --device cuda --dtype fp32 bf16 --repeats 5

The two released 4x8x8 causal models that world models use most, KL-16
(``vidtok_kl_causal_488_16chn``) and FSQ-32768 (``vidtok_fsq_causal_488_32768``), built at
their released size (``ch=128``, 157M parameters; the arguments ``wmkit convert vidtok``
derives from their configs) with random weights: speed and memory do not depend on the
values. Each clip is ``--frames`` x ``--resolution``² (17 x 256² by default), batch 1.

For each model, generation (``--generation``), dtype and operation (encode, decode;
whole clip or streaming with ``--chunk-latents`` latent frames per chunk) a fresh
subprocess builds the model, warms up on a small clip, then times ``--repeats`` runs:
frames/s is ``frames / time`` (median, with min–max). Peak memory is CUDA's
``max_memory_allocated`` above the loaded model and input, or on CPU the rise of the
peak resident set (``VmHWM``) above the resident set before the timed runs.

Prints a Markdown table and writes the raw numbers to ``results/bench_vidtok_pretrained.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_tokenizer import autocast, hardware, peak_memory_mb, start_peak_memory, sync

from wmkit.tokenizers import VidTokLayout, VidTokTokenizer

ROOT = Path(__file__).resolve().parents[1]

#: ``VidTokTokenizer`` arguments of the released models (what ``wmkit convert vidtok``
#: derives from ``configs/vidtok_{kl,fsq}_causal_488_*.yaml``); v1.1 adds the generation's
#: padding and upsampling.
_ARCH = {
    "size": "base",
    "spatial_compression": 8,
    "temporal_compression": 4,
    "channels": 128,
    "multipliers": [1, 2, 4, 4],
    "blocks": 2,
    "attention": True,
}
MODELS = {
    "kl16": {"regularizer": "kl", "latent_channels": 16, **_ARCH},
    "fsq32768": {"regularizer": "fsq", "fsq_levels": [8] * 5, **_ARCH},
}
_LEVELS = {"norm": "layer", "encoder_temporal_levels": [2, 1], "decoder_temporal_levels": [1, 2]}
GENERATIONS = {
    "1.0": VidTokLayout(**_LEVELS, time_padding="zeros", temporal_upsample="nearest"),
    "1.1": VidTokLayout(**_LEVELS, time_padding="first_frame", temporal_upsample="trilinear"),
}
OPS = ["encode", "decode", "stream_encode", "stream_decode"]


def build(model: str, generation: str) -> VidTokTokenizer:
    """The released-size model with random weights."""
    torch.manual_seed(0)
    return VidTokTokenizer(**MODELS[model], layout=GENERATIONS[generation]).eval()


def _inputs(tok: VidTokTokenizer, frames: int, res: int, device: str) -> tuple:
    video = torch.rand(1, frames, 3, res, res, device=device) * 2 - 1
    shape = tok.tokens_shape(frames, res, res)
    if tok.kind == "discrete":
        latents = torch.randint(0, tok.vocab_size, (1, *shape), device=device)
    else:
        latents = torch.randn(1, *shape, device=device)
    return video, latents


def _run(tok: VidTokTokenizer, op: str, video, latents, chunk: int) -> None:
    if op == "encode":
        tok.encode(video)
    elif op == "decode":
        tok.decode(latents)
    elif op == "stream_encode":
        for _ in tok.encode_chunks(tok.split_frames(video, chunk)):
            pass
    else:
        chunks = [latents[:, :1], *latents[:, 1:].split(chunk, dim=1)]
        for _ in tok.decode_chunks(chunks):
            pass


def probe(spec: dict) -> dict:
    """One (model, generation, dtype, op) in this fresh process: times and peak memory."""
    device = spec["device"]
    torch.set_num_threads(spec["threads"]) if spec["threads"] else None
    tok = build(spec["model"], spec["generation"]).to(device)
    small = _inputs(tok, 1 + tok.temporal_compression, 32, device)
    video, latents = _inputs(tok, spec["frames"], spec["resolution"], device)
    with torch.no_grad(), autocast(device, spec["dtype"]):
        _run(tok, spec["op"], *small, spec["chunk"])  # warm-up
        sync(device)
        base = start_peak_memory(device)
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            _run(tok, spec["op"], video, latents, spec["chunk"])
            sync(device)
            times.append(time.perf_counter() - start)
    peak = peak_memory_mb(device, base)
    fps = [spec["frames"] / t for t in times]
    return {
        "fps_median": statistics.median(fps),
        "fps_min": min(fps),
        "fps_max": max(fps),
        "peak_mb": peak,
        "params": sum(p.numel() for p in tok.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", nargs="+", default=None, choices=["fp32", "bf16"],
                        help="default: fp32 on CPU, fp32 and bf16 on CUDA")  # fmt: skip
    parser.add_argument("--size", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="which released models")  # fmt: skip
    parser.add_argument("--generation", nargs="+", default=["1.0"], choices=list(GENERATIONS))
    parser.add_argument("--ops", nargs="+", default=OPS, choices=OPS)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--chunk-latents", type=int, default=1,
                        help="latent frames per streaming chunk")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench_vidtok_pretrained.json"))
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(json.loads(args.probe))))
        return
    dtypes = args.dtype or (["fp32", "bf16"] if args.device.startswith("cuda") else ["fp32"])
    rows = []
    for model in args.size:
        for gen in args.generation:
            for dtype in dtypes:
                for op in args.ops:
                    spec = {
                        "model": model, "generation": gen, "dtype": dtype, "op": op,
                        "device": args.device, "frames": args.frames,
                        "resolution": args.resolution, "chunk": args.chunk_latents,
                        "repeats": args.repeats, "threads": args.threads,
                    }  # fmt: skip
                    out = subprocess.run(
                        [sys.executable, __file__, "--probe", json.dumps(spec)],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    row = {**spec, **json.loads(out.stdout.strip().splitlines()[-1])}
                    rows.append(row)
                    print(f"  {model} v{gen} {dtype} {op}: {row['fps_median']:.2f} frames/s, "
                          f"{row['peak_mb']:.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
    hw = hardware(args.device)
    date = datetime.date.today().isoformat()
    print(f"\n{hw}; {args.frames}x{args.resolution}x{args.resolution}, batch 1, "
          f"random weights; {args.repeats} repeat(s); {date}\n")  # fmt: skip
    print("| model | gen. | dtype | operation | frames/s (median, min–max) | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        op = r["op"].replace("stream_", "streaming ") + (
            f" ({r['chunk']} latent/chunk)" if r["op"].startswith("stream") else " (whole clip)"
        )
        name = {"kl16": "KL-16 4x8x8", "fsq32768": "FSQ-32768 4x8x8"}[r["model"]]
        print(f"| {name} | {r['generation']} | {r['dtype']} | {op} | {r['fps_median']:.2f} "
              f"({r['fps_min']:.2f}–{r['fps_max']:.2f}) | {r['peak_mb']:.0f} |")  # fmt: skip
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hardware": hw, "date": date, "rows": rows}, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
