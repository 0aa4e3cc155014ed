"""Benchmark wmkit.ar_world: rollout speed (raster vs diagonal, KV cache vs none; diagonal
decoding within a frame vs across frames) and quality (next-frame / 8-step PSNR and SSIM vs
copy-last-frame, action controllability).

    uv run --no-sync python tools/bench_ar_world.py --quick
    uv run --no-sync python tools/bench_ar_world.py --quick --part cross_frame

Speed uses untrained weights (speed does not depend on them) and core's ToyTokenizer at 4x
down, with frames sized so the grid is 16x16 (64x64 frames) or MineWorld's 24x14 (96x56).
Quality trains the model for a fixed number of steps on moving squares (core's
MovingSquaresDataModule, generated in memory) and evaluates greedy rollouts on held-out
episodes. Prints a Markdown table and writes raw numbers to results/bench_ar_world.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torchmetrics.functional import structural_similarity_index_measure as ssim

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyTokenizer, moving_squares


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    spec = ActionSpec.discrete(5)
    steps = 2 if args.quick else 4
    for grid_name, (h, w) in {"16x16": (64, 64), "24x14": (56, 96)}.items():
        for decoding, cache in (("raster", False), ("raster", True), ("diagonal", True)):
            torch.manual_seed(0)
            model = ARWorldModel(
                spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w), size=args.size,
                max_frames=4, decoding=decoding, window=args.window, use_cache=cache,
                temperature=1.0,
            ).to(args.device).eval()  # fmt: skip
            context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
            actions = spec.sample((1, steps)).to(args.device)
            model.rollout(context, actions[:, :1])  # warm-up
            times = []
            for _ in range(args.repeats):
                _sync(args.device)
                t0 = time.perf_counter()
                model.rollout(context, actions)
                _sync(args.device)
                times.append(time.perf_counter() - t0)
            fps = [steps / t for t in times]
            rows.append({
                "grid": grid_name, "tokens_per_frame": model.tokens_per_frame,
                "decoding": decoding if decoding == "raster" else f"diagonal (w={args.window})",
                "kv_cache": cache, "fps_median": statistics.median(fps),
                "fps_min": min(fps), "fps_max": max(fps), "steps": steps,
            })  # fmt: skip
    return rows


def cross_frame_speed(args: argparse.Namespace) -> list[dict]:
    """Rollout frames/s at 16x16 tokens: raster vs per-frame diagonal vs cross-frame diagonal
    (the next frame starts before the current one ends; ``rollout`` with known actions), with
    the forward passes per frame counted. 8-frame window, 2 context frames, so a rollout of
    ``steps`` frames runs ``min(steps, 6)`` frames per cross-frame pipeline."""
    rows = []
    spec = ActionSpec.discrete(5)
    steps = 6 if args.quick else 12
    h = w = 64
    settings = (
        ("raster", "raster", False),
        (f"diagonal (w={args.window}), per frame", "diagonal", False),
        (f"diagonal (w={args.window}), across frames", "diagonal", True),
    )
    for label, decoding, cross in settings:
        torch.manual_seed(0)
        model = ARWorldModel(
            spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w), size=args.size,
            max_frames=8, decoding=decoding, window=args.window, temperature=1.0,
            cross_frame=cross,
        ).to(args.device).eval()  # fmt: skip
        context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
        actions = spec.sample((1, steps)).to(args.device)
        model.rollout(context, actions[:, :2])  # warm-up
        passes = []
        run = model._run

        def counted(state, x, positions, run=run, passes=passes):
            passes.append(1)
            return run(state, x, positions)

        model._run = counted
        times = []
        for _ in range(args.repeats):
            passes.clear()
            _sync(args.device)
            t0 = time.perf_counter()
            model.rollout(context, actions)
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        fps = [steps / t for t in times]
        rows.append({
            "grid": "16x16", "tokens_per_frame": model.tokens_per_frame, "decoding": label,
            "cross_frame": cross, "passes_per_frame": len(passes) / steps,
            "fps_median": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
            "steps": steps,
        })  # fmt: skip
    return rows


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR of the mean MSE over all frames given (``wmkit-eval``'s headline), ``[]``."""
    mse = ((a - b) ** 2).mean().clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)  # range [-1, 1] → peak-to-peak 2


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(ssim((a + 1) / 2, (b + 1) / 2, data_range=1.0, kernel_size=7))


def quality(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    length, context = 10, 2
    train = moving_squares(64, length, 16, seed=1)
    test = moving_squares(16, length, 16, seed=2)
    model = ARWorldModel(
        train.action_spec, ToyTokenizer(patch=4, levels=4), size=args.size, max_frames=length,
        temperature=0.0, window=args.window,
    )  # fmt: skip
    module = ARWorldModelModule(model, lr=3e-3, action_dropout=0.1)
    frames = to_float_video(train.frames)
    actions, rewards = torch.from_numpy(train.actions), torch.from_numpy(train.rewards)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    steps = 400 if args.quick else 1000
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(frames), (16,), generator=gen)
        batch = {"frames": frames[idx], "actions": actions[idx], "rewards": rewards[idx]}
        loss = module.losses(batch, train=True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    model.eval()
    tf = to_float_video(test.frames)
    ta = torch.from_numpy(test.actions)
    ctx, target = tf[:, :context], tf[:, context:]
    acts = ta[:, context - 1 : length - 1]  # action t-1 leads to frame t
    shuffled = acts[torch.roll(torch.arange(len(acts)), 1)]
    copy_last = ctx[:, -1:].expand_as(target)
    out: dict = {"train_steps": steps, "train_seconds": train_s, "rollout_steps": target.shape[1]}
    pred_by = {}
    for decoding in ("raster", "diagonal"):
        model.decoding = decoding
        torch.manual_seed(0)
        pred = model.rollout(ctx, acts, context_actions=ta[:, : context - 1]).frames
        pred_by[decoding] = pred
        pred_shuf = model.rollout(ctx, shuffled, context_actions=ta[:, : context - 1]).frames
        out[decoding] = {
            "psnr_1": _psnr(pred[:, 0], target[:, 0]).mean().item(),
            "ssim_1": _ssim(pred[:, 0], target[:, 0]),
            "psnr_8": _psnr(pred.flatten(0, 1), target.flatten(0, 1)).mean().item(),
            "ssim_8": _ssim(pred.flatten(0, 1), target.flatten(0, 1)),
            "controllability_db": (
                _psnr(pred.flatten(0, 1), target.flatten(0, 1)).mean()
                - _psnr(pred_shuf.flatten(0, 1), target.flatten(0, 1)).mean()
            ).item(),
        }
    recon = model.tokenizer.decode(model.tokenizer.encode(tf)).clamp(-1, 1)
    rt, rc = recon[:, context:], recon[:, context - 1 : context].expand_as(target)
    out["recon_target"] = {
        "tokenizer_recon_psnr_8": _psnr(rt.flatten(0, 1), target.flatten(0, 1)).mean().item(),
        "raster_psnr_8": _psnr(pred_by["raster"].flatten(0, 1), rt.flatten(0, 1)).mean().item(),
        "diagonal_psnr_8": _psnr(pred_by["diagonal"].flatten(0, 1), rt.flatten(0, 1)).mean().item(),
        "copy_last_psnr_8": _psnr(rc.flatten(0, 1), rt.flatten(0, 1)).mean().item(),
        "raster_psnr_1": _psnr(pred_by["raster"][:, 0], rt[:, 0]).mean().item(),
        "copy_last_psnr_1": _psnr(rc[:, 0], rt[:, 0]).mean().item(),
    }
    out["copy_last"] = {
        "psnr_1": _psnr(copy_last[:, 0], target[:, 0]).mean().item(),
        "ssim_1": _ssim(copy_last[:, 0], target[:, 0]),
        "psnr_8": _psnr(copy_last.flatten(0, 1), target.flatten(0, 1)).mean().item(),
        "ssim_8": _ssim(copy_last.flatten(0, 1), target.flatten(0, 1)),
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--part", choices=("all", "speed", "cross_frame", "quality"), default="all",
        help="run only one section",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="default results/bench_ar_world[_PART].json")
    args = p.parse_args()
    if args.out is None:
        suffix = "" if args.part == "all" else f"_{args.part}"
        args.out = f"results/bench_ar_world{suffix}.json"
    torch.set_num_threads(args.threads)
    hardware = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU ({args.threads} thread(s)), no GPU"
    )
    part = args.part
    speed_rows = speed(args) if part in ("all", "speed") else []
    cross_rows = cross_frame_speed(args) if part in ("all", "cross_frame") else []
    qual = quality(args) if part in ("all", "quality") else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "hardware": hardware, "args": vars(args), "speed": speed_rows,
        "cross_frame": cross_rows, "quality": qual,
    }  # fmt: skip
    out.write_text(json.dumps(payload, indent=2))
    if speed_rows:
        _print_speed(args, hardware, speed_rows)
    if cross_rows:
        print(
            f"\n## ar-world rollout across frames — size {args.size}, batch 1, {hardware}, "
            f"{cross_rows[0]['steps']}-frame rollouts, 8-frame window\n"
        )
        print("| tokens/frame | decoding | forward passes/frame | frames/s (median) | min–max |")
        print("|---|---|---|---|---|")
        for r in cross_rows:
            print(
                f"| {r['grid']} ({r['tokens_per_frame']}) | {r['decoding']} | "
                f"{r['passes_per_frame']:.1f} | {r['fps_median']:.2f} | "
                f"{r['fps_min']:.2f}–{r['fps_max']:.2f} |"
            )
    if qual is not None:
        _print_quality(args, qual)
    print(f"\nraw numbers: {out}")


def _print_speed(args: argparse.Namespace, hardware: str, speed_rows: list[dict]) -> None:
    print(f"## ar-world rollout speed — size {args.size}, batch 1, {hardware}\n")
    print("| tokens/frame | decoding | KV cache | frames/s (median) | min–max |")
    print("|---|---|---|---|---|")
    for r in speed_rows:
        print(
            f"| {r['grid']} ({r['tokens_per_frame']}) | {r['decoding']} | "
            f"{'yes' if r['kv_cache'] else 'no'} | {r['fps_median']:.2f} | "
            f"{r['fps_min']:.2f}–{r['fps_max']:.2f} |"
        )


def _print_quality(args: argparse.Namespace, qual: dict) -> None:
    print(
        f"\n## quality — moving squares 16x16 (in memory), {qual['train_steps']} training steps "
        f"({qual['train_seconds']:.0f} s), {qual['rollout_steps']}-step greedy rollouts on 16 "
        "held-out episodes\n"
    )
    print("| model | PSNR next | SSIM next | PSNR 8-step | SSIM 8-step | controllability (dB) |")
    print("|---|---|---|---|---|---|")
    for name in ("raster", "diagonal", "copy_last"):
        q = qual[name]
        ctrl = f"{q['controllability_db']:+.2f}" if "controllability_db" in q else "—"
        label = {"raster": "ar-world raster", "diagonal": f"ar-world diagonal (w={args.window})",
                 "copy_last": "copy last frame"}[name]  # fmt: skip
        print(
            f"| {label} | {q['psnr_1']:.2f} | {q['ssim_1']:.3f} | {q['psnr_8']:.2f} | "
            f"{q['ssim_8']:.3f} | {ctrl} |"
        )
    r = qual["recon_target"]
    print(
        f"\nAgainst the tokenizer's reconstruction of the truth (its own ceiling is "
        f"{r['tokenizer_recon_psnr_8']:.2f} dB PSNR to the real frames): next-frame PSNR "
        f"raster {r['raster_psnr_1']:.2f} vs copy-last {r['copy_last_psnr_1']:.2f}; 8-step "
        f"raster {r['raster_psnr_8']:.2f}, diagonal {r['diagonal_psnr_8']:.2f} vs copy-last "
        f"{r['copy_last_psnr_8']:.2f}."
    )


if __name__ == "__main__":
    main()
