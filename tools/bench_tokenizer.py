"""Benchmark wmkit.tokenizers: speed, memory, streaming memory and reconstruction quality.

    uv run --no-sync python tools/bench_tokenizer.py --quick
    uv run --no-sync python tools/bench_tokenizer.py --device cuda --size base --dtype bf16

Three tables:

1. encode / decode frames per second and peak memory of a VidTok KL-4 4x8x8 tokenizer of
   ``--size`` on 17-frame clips (CPU: 64² and 128²; CUDA: also 256²). Median and spread
   (min–max) over ``--repeats`` timed runs after one warm-up. Peak memory: CUDA
   ``max_memory_allocated``; CPU the rise of the peak resident set above the loaded model,
   measured in a fresh subprocess per operation.
2. streaming (``encode_chunks``/``decode_chunks``, one latent frame per chunk) vs one full
   pass: peak memory at T = 17 and T = 129 frames (64²).
3. reconstruction PSNR / SSIM on held-out episodes of a recorded dataset (``--data``, e.g.
   ``wmkit record crafter --episodes 12 --out /tmp/bench-data/crafter-64 --resolution 64``)
   after the same fixed training budget for KL-4, KL-16 and FSQ (8·8·8·6·5) at 4x8x8 (3D,
   causal), each beside a per-frame 2D tokenizer (no temporal layers) at 1x16x16 with the
   same channels, i.e. the same number of latent values per second of video.

Writes the raw numbers to ``results/bench_tokenizer.json``. Its timing, memory and hardware
helpers serve the other tokenizer benchmarks too (``bench_compressive.py``,
``bench_vidtok_pretrained.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from wmkit.tokenizers import VidTokTokenizer, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


def sync(device: str) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing on CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(device: str, dtype: str):
    """bf16 autocast on ``device`` for ``dtype == "bf16"``, else no context."""
    if dtype == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return nullcontext()


def timed(fn, device: str, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after one warm-up call, synchronised."""
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - start)
    return out


def train_steps(batches, steps: int, loss_fn, opt: torch.optim.Optimizer) -> None:
    """``steps`` optimiser steps on ``loss_fn(frames)`` of successive training batches,
    calling ``batches()`` for a new pass over the loader whenever one runs out."""
    done = 0
    while done < steps:
        for batch in batches():
            loss = loss_fn(batch["frames"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                return


def hardware(device: str) -> str:
    """The GPU's name, or the CPU's cores, architecture and torch threads."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU: {os.cpu_count()} cores ({platform.machine()}), torch threads {threads}"


def _status_mb(key: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from /proc, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0). ``ru_maxrss`` cannot be used: it
    keeps the parent's peak across fork + exec."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def start_peak_memory(device: str) -> float:
    """Reset the peak-memory counter of ``device``; return the baseline to pass to
    :func:`peak_memory_mb` (CUDA: bytes allocated; CPU: resident set in MB)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    _reset_peak_rss()
    return _status_mb("VmRSS")


def peak_memory_mb(device: str, base: float) -> float:
    """Peak memory in MB above ``base`` since :func:`start_peak_memory`: CUDA's
    ``max_memory_allocated``, or on CPU the peak resident set (``VmHWM``)."""
    if device.startswith("cuda"):
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return _status_mb("VmHWM") - base


def _model(size: str, **kw) -> VidTokTokenizer:
    torch.manual_seed(0)
    return VidTokTokenizer(size, regularizer="kl", latent_channels=4, **kw).eval()


# ----------------------------------------------------------------------------- memory probe
def probe(spec: dict) -> dict:
    """Run one operation in this (fresh) process and report its peak memory in MB."""
    device, dtype = spec["device"], spec["dtype"]
    tok = _model(spec["size"]).to(device)
    t, res = spec["frames"], spec["resolution"]
    video = torch.rand(1, t, 3, res, res, device=device) * 2 - 1
    with torch.no_grad(), autocast(device, dtype):
        latents = tok.encode(video).values if spec["op"] in ("decode", "stream_decode") else None
    sync(device)
    base = start_peak_memory(device)
    with torch.no_grad(), autocast(device, dtype):
        op = spec["op"]
        if op == "encode":
            tok.encode(video)
        elif op == "decode":
            tok.decode(latents)
        elif op == "stream_encode":
            for _ in tok.encode_chunks(tok.split_frames(video, 1)):
                pass
        elif op == "stream_decode":
            for _ in tok.decode_chunks(latents.split(1, dim=1)):
                pass
    sync(device)
    return {"peak_mb": round(peak_memory_mb(device, base), 1)}


def run_probe(spec: dict) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--probe", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


# ----------------------------------------------------------------------------- speed
def bench_speed(args: argparse.Namespace) -> list[dict]:
    resolutions = [64, 128] + ([256] if args.device.startswith("cuda") else [])
    if args.quick and not args.device.startswith("cuda"):
        resolutions = [64, 128]
    tok = _model(args.size).to(args.device)
    frames = 17
    rows = []
    for res in resolutions:
        video = torch.rand(1, frames, 3, res, res, device=args.device) * 2 - 1
        with torch.no_grad(), autocast(args.device, args.dtype):
            latents = tok.encode(video).values
        row = {"size": args.size, "resolution": res, "frames": frames, "dtype": args.dtype}
        for name, fn in (
            ("encode", lambda v=video: tok.encode(v)),
            ("decode", lambda z=latents: tok.decode(z)),
        ):
            with torch.no_grad(), autocast(args.device, args.dtype):
                times = timed(fn, args.device, args.repeats)
            fps = [frames / t for t in times]
            row[f"{name}_fps"] = statistics.median(fps)
            row[f"{name}_fps_min"], row[f"{name}_fps_max"] = min(fps), max(fps)
            row[f"{name}_peak_mb"] = run_probe(
                {
                    "device": args.device,
                    "dtype": args.dtype,
                    "size": args.size,
                    "frames": frames,
                    "resolution": res,
                    "op": name,
                }
            )
        rows.append(row)
    return rows


def bench_streaming(args: argparse.Namespace) -> list[dict]:
    rows = []
    for frames in (17, 129):
        row = {"size": args.size, "resolution": 64, "frames": frames}
        for op in ("encode", "stream_encode", "decode", "stream_decode"):
            spec = {
                "device": args.device,
                "dtype": args.dtype,
                "size": args.size,
                "frames": frames,
                "resolution": 64,
                "op": op,
            }
            row[f"{op}_peak_mb"] = run_probe(spec)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- quality
VARIANTS = [
    ("KL-4", {"regularizer": "kl", "latent_channels": 4}),
    ("KL-16", {"regularizer": "kl", "latent_channels": 16}),
    ("FSQ 8·8·8·6·5", {"regularizer": "fsq", "fsq_levels": [8, 8, 8, 6, 5]}),
]
LAYOUTS = [
    ("3D causal 4x8x8", {"spatial_compression": 8, "temporal_compression": 4}),
    (
        "2D per-frame 1x16x16",
        {"spatial_compression": 16, "temporal_compression": 1, "temporal_mixing": False},
    ),
]


def bench_quality(args: argparse.Namespace) -> list[dict]:
    from wmkit.core.data.datamodule import EpisodeDataModule
    from wmkit.tokenizers.lit import VidTokModule

    data = EpisodeDataModule(
        args.data,
        clip_length=9,
        batch_size=4,
        split=(0.7, 0.05, 0.25),
        with_steps=False,
        samples_per_epoch=4 * args.train_steps,
        seed=0,
    )
    data.setup()
    test_clips = [b["frames"] for b in data.test_dataloader()]
    if args.quick:
        test_clips = test_clips[:8]
    rows = []
    for name, reg in VARIANTS:
        for layout, lay in LAYOUTS:
            torch.manual_seed(0)
            tok = VidTokTokenizer(args.train_size, channels=args.train_channels, **reg, **lay)
            module = VidTokModule(tok, lr=args.lr, perceptual_weight=1.0)
            opt = module.configure_optimizers()[0]
            start = time.perf_counter()
            tok.train()

            def loss_fn(frames: torch.Tensor) -> torch.Tensor:
                return module._generator_losses(frames, tok(frames), adversarial=False)["loss"]  # noqa: B023

            train_steps(data.train_dataloader, args.train_steps, loss_fn, opt)
            train_s = time.perf_counter() - start
            tok.eval()
            p, s = [], []
            with torch.no_grad():
                for frames in test_clips:
                    recon = tok.decode(tok.encode(frames))
                    p.append(psnr(recon, frames).item())
                    s.append(ssim(recon, frames).item())
            t, h = 1 + 4 * 4, 64  # latent values per frame, asymptotically (per t frames / t)
            shape = tok.tokens_shape(t, h, h)
            values = torch.Size(shape).numel() * (1 if tok.kind == "continuous" else tok.code_dim)
            rows.append(
                {
                    "regularizer": name,
                    "layout": layout,
                    "params": tok.num_parameters(),
                    "latent_values_per_17_frames_64px": values,
                    "train_steps": args.train_steps,
                    "train_seconds": round(train_s, 1),
                    "test_clips": len(test_clips) * test_clips[0].shape[0],
                    "psnr": statistics.mean(p),
                    "ssim": statistics.mean(s),
                }
            )
            print(f"  trained {name} / {layout}: PSNR {rows[-1]['psnr']:.2f}", flush=True)
    return rows


# ----------------------------------------------------------------------------- main
def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default="small", help="tokenizer size for speed/memory")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--data", default="/tmp/bench-data/crafter-64")
    parser.add_argument("--train-size", default="tiny", help="tokenizer size for quality")
    parser.add_argument("--train-channels", type=int, default=8, help="base width for quality")
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench_tokenizer.json"))
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 3)
    if args.train_steps is None:
        args.train_steps = 60 if args.quick else 150
    return args


def main() -> None:
    args = _arguments()
    if args.probe:
        print(json.dumps(probe(json.loads(args.probe))))
        return
    hw = hardware(args.device)
    print(f"hardware: {hw}; torch {torch.__version__}\n", flush=True)
    speed = bench_speed(args)
    print(f"### Speed: VidTok KL-4 4x8x8, size {args.size}, 17-frame clips, batch 1, {args.dtype}")
    print()
    print("| resolution | encode frames/s | decode frames/s | encode peak MB | decode peak MB |")
    print("|---|---|---|---|---|")
    for r in speed:
        print(
            f"| {r['resolution']}² | {r['encode_fps']:.1f} ({r['encode_fps_min']:.1f}–"
            f"{r['encode_fps_max']:.1f}) | {r['decode_fps']:.1f} ({r['decode_fps_min']:.1f}–"
            f"{r['decode_fps_max']:.1f}) | {r['encode_peak_mb']:.0f} | {r['decode_peak_mb']:.0f} |"
        )
    stream = bench_streaming(args)
    print(f"\n### Streaming vs full pass: peak memory (MB), size {args.size}, 64², {args.dtype}\n")
    print("| frames | encode full | encode streamed | decode full | decode streamed |")
    print("|---|---|---|---|---|")
    for r in stream:
        print(
            f"| {r['frames']} | {r['encode_peak_mb']:.0f} | {r['stream_encode_peak_mb']:.0f} | "
            f"{r['decode_peak_mb']:.0f} | {r['stream_decode_peak_mb']:.0f} |"
        )
    quality: list[dict] = []
    if not args.skip_quality:
        print(
            f"\n### Reconstruction on held-out episodes of {args.data} after {args.train_steps} "
            f"steps (size {args.train_size}, channels {args.train_channels}, batch 4 × 9 "
            f"frames, AdamW lr {args.lr})\n",
            flush=True,
        )
        quality = bench_quality(args)
        print()
        print(
            "| bottleneck | layout | latent values / 17 frames | params | train s | PSNR | SSIM |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in quality:
            print(
                f"| {r['regularizer']} | {r['layout']} | {r['latent_values_per_17_frames_64px']} | "
                f"{r['params']:,} | {r['train_seconds']:.0f} | {r['psnr']:.2f} | "
                f"{r['ssim']:.3f} |"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "hardware": hw,
                "torch": torch.__version__,
                "args": {k: v for k, v in vars(args).items() if k != "probe"},
                "speed": speed,
                "streaming": stream,
                "quality": quality,
            },
            indent=2,
        )
    )
    print(f"\nraw numbers: {out}")


if __name__ == "__main__":
    main()
