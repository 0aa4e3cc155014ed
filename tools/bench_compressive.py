"""Benchmark the compressive (iVideoGPT-style) tokenizer against a per-frame tokenizer.

    uv run --no-sync wmkit record crafter --episodes 10 --out /tmp/cmp-data --resolution 32 \
        --max-steps 80 --policy explore --format npz
    uv run --no-sync python tools/bench_compressive.py --data /tmp/cmp-data --quick

Both models are ``CompressiveTokenizer`` of the same size and layout (context frames ``N``
tokens each, future frames ``n`` tokens each); the baseline has ``cross_attention=False``, so
its future frames are tokenized **on their own** with ``n`` tokens (a per-frame tokenizer at
``n`` tokens per frame). Same training budget (AdamW, random context length per batch);
future-frame PSNR/SSIM on held-out episodes with ``--context`` context frames; tokens per
16-frame clip; encode/decode frames/s (median and min–max over ``--repeats`` after a
warm-up). Writes ``results/bench_compressive.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from bench_tokenizer import hardware, timed, train_steps

from wmkit.tokenizers import CompressiveModule, CompressiveTokenizer, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


def run(args: argparse.Namespace) -> list[dict]:
    from wmkit.core.data.datamodule import EpisodeDataModule

    data = EpisodeDataModule(
        args.data,
        clip_length=args.clip,
        batch_size=args.batch,
        split=(0.7, 0.05, 0.25),
        with_steps=False,
        samples_per_epoch=args.batch * args.train_steps,
        seed=0,
    )
    data.setup()
    test = [b["frames"].to(args.device) for b in data.test_dataloader()]
    if args.quick:
        test = test[:8]
    h = test[0].shape[-1]
    rows = []
    for name, cross in (("compressive (cross-attention)", True), ("per-frame future", False)):
        torch.manual_seed(0)
        tok = CompressiveTokenizer(
            args.size,
            spatial_compression=4,
            future_patch=args.patch,
            cross_attention=cross,
            cross_attention_levels=3,
            context_levels=[8, 8, 8, 6, 5],
            future_levels=[8, 8, 8, 6, 5],
        ).to(args.device)
        module = CompressiveModule(
            tok, lr=args.lr, perceptual_weight=0.0, max_context_frames=args.context
        )
        opt = module.configure_optimizers()
        tok.train()
        start = time.perf_counter()

        def loss_fn(frames: torch.Tensor) -> torch.Tensor:
            frames = frames.to(args.device)
            return module._losses(frames, module.sample_context(frames.shape[1]))[0]["loss"]  # noqa: B023

        train_steps(data.train_dataloader, args.train_steps, loss_fn, opt)
        train_s = time.perf_counter() - start
        tok.eval()
        p, s = [], []
        t0 = args.context
        with torch.no_grad():
            for frames in test:
                recon = tok.decode(tok.encode(frames, context_frames=t0))
                p.append(psnr(recon[:, t0:], frames[:, t0:]).item())
                s.append(ssim(recon[:, t0:], frames[:, t0:]).item())
            clip = torch.rand(1, 16, 3, h, h, device=args.device) * 2 - 1
            lat = tok.encode(clip, context_frames=t0)
            enc = timed(lambda: tok.encode(clip, context_frames=t0), args.device, args.repeats)  # noqa: B023
            dec = timed(lambda: tok.decode(lat), args.device, args.repeats)  # noqa: B023
        per = tok.tokens_per_frame(h, h)
        rows.append(
            {
                "model": name,
                "params": tok.num_parameters(),
                "resolution": h,
                "context_frames": t0,
                "tokens_per_context_frame": per.context,
                "tokens_per_future_frame": per.future,
                "tokens_per_16_frames": t0 * per.context + (16 - t0) * per.future,
                "tokens_per_16_frames_all_n": 16 * per.future,
                "train_steps": args.train_steps,
                "train_seconds": round(train_s, 1),
                "test_clips": sum(f.shape[0] for f in test),
                "future_psnr": statistics.mean(p),
                "future_ssim": statistics.mean(s),
                "encode_fps": [16 / x for x in enc],
                "decode_fps": [16 / x for x in dec],
            }
        )
    return rows


def _fmt(v: list[float]) -> str:
    return f"{statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cmp-data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--clip", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--context", type=int, default=2)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (tiny convs thrash with more)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.train_steps is None:
        args.train_steps = 150 if args.quick else 400
    if args.quick:
        args.repeats = min(args.repeats, 3)
    rows = run(args)
    hw = hardware(args.device)
    print(f"\nHardware: {hw}; {args.train_steps} steps, batch {args.batch} x {args.clip} frames\n")
    print(
        "| model | params | tokens/frame ctx / future | tokens per 16 frames | train s "
        "| future PSNR | future SSIM | encode frames/s | decode frames/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['tokens_per_context_frame']} / "
            f"{r['tokens_per_future_frame']} | {r['tokens_per_16_frames']} | {r['train_seconds']} "
            f"| {r['future_psnr']:.2f} | {r['future_ssim']:.3f} | {_fmt(r['encode_fps'])} "
            f"| {_fmt(r['decode_fps'])} |"
        )
    out = ROOT / "results" / "bench_compressive.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"hardware": hw, "args": vars(args), "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
