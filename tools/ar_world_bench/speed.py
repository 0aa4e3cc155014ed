"""CPU-friendly rollout speed: raster vs diagonal, KV cache vs none, compiled decoding; diagonal
decoding within a frame vs across frames."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ar_world_bench.timing import count_passes, rollout_fps, sync
from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.decoders import make_decoder
from wmkit.ar_world.sizes import transformer_spec
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyTokenizer


def speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    spec = ActionSpec.discrete(5)
    steps = 2 if args.quick else 4
    for grid_name, (h, w) in {"16x16": (64, 64), "24x14": (56, 96)}.items():
        settings = (  # decoding, KV cache, compile_decoding
            ("raster", False, False), ("raster", True, False), ("diagonal", True, False),
            ("raster", True, True), ("diagonal", True, True),
        )  # fmt: skip
        for decoding, cache, compiled in settings:
            torch.manual_seed(0)
            model = ARWorldModel(
                spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w),
                transformer=transformer_spec(args.size), max_frames=4,
                decoder=make_decoder(decoding, args.window, use_cache=cache, temperature=1.0,
                                     compile_decoding=compiled),
            ).to(args.device).eval()  # fmt: skip
            context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
            actions = spec.sample((1, steps)).to(args.device)
            fps = rollout_fps(model, context, actions, actions[:, :1], args)
            rows.append({
                "grid": grid_name, "tokens_per_frame": model.tokens_per_frame,
                "decoding": decoding if decoding == "raster" else f"diagonal (w={args.window})",
                "kv_cache": cache, "compiled": compiled, "fps_median": statistics.median(fps),
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
            spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w),
            transformer=transformer_spec(args.size), max_frames=8,
            decoder=make_decoder(decoding, args.window, cross_frame=cross, temperature=1.0),
        ).to(args.device).eval()  # fmt: skip
        context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
        actions = spec.sample((1, steps)).to(args.device)
        model.rollout(context, actions[:, :2])  # warm-up
        passes = count_passes(model)
        times = []
        for _ in range(args.repeats):
            passes.clear()
            sync(args.device)
            t0 = time.perf_counter()
            model.rollout(context, actions)
            sync(args.device)
            times.append(time.perf_counter() - t0)
        fps = [steps / t for t in times]
        rows.append({
            "grid": "16x16", "tokens_per_frame": model.tokens_per_frame, "decoding": label,
            "cross_frame": cross, "passes_per_frame": len(passes) / steps,
            "fps_median": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
            "steps": steps,
        })  # fmt: skip
    return rows


def print_speed(args: argparse.Namespace, hardware: str, speed_rows: list[dict]) -> None:
    print(f"## ar-world rollout speed — size {args.size}, batch 1, {hardware}\n")
    print("| tokens/frame | decoding | KV cache | compiled | frames/s (median) | min–max |")
    print("|---|---|---|---|---|---|")
    for r in speed_rows:
        print(
            f"| {r['grid']} ({r['tokens_per_frame']}) | {r['decoding']} | "
            f"{'yes' if r['kv_cache'] else 'no'} | {'yes' if r.get('compiled') else 'no'} | "
            f"{r['fps_median']:.2f} | "
            f"{r['fps_min']:.2f}–{r['fps_max']:.2f} |"
        )


def print_cross_frame(args: argparse.Namespace, hardware: str, rows: list[dict]) -> None:
    print(
        f"\n## ar-world rollout across frames — size {args.size}, batch 1, {hardware}, "
        f"{rows[0]['steps']}-frame rollouts, 8-frame window\n"
    )
    print("| tokens/frame | decoding | forward passes/frame | frames/s (median) | min–max |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['grid']} ({r['tokens_per_frame']}) | {r['decoding']} | "
            f"{r['passes_per_frame']:.1f} | {r['fps_median']:.2f} | "
            f"{r['fps_min']:.2f}–{r['fps_max']:.2f} |"
        )
