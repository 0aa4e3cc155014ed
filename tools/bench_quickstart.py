"""Time `wmkit quickstart` end to end, per tokenizer, and say which one wins on each measure.

    uv run python tools/bench_quickstart.py                   # the default budget (~15 min target)
    uv run python tools/bench_quickstart.py --tokenizer per-frame,vidtok-4x   # one row each
    uv run python tools/bench_quickstart.py --preset tiny     # a quick check

Prints a Markdown table, one row per tokenizer × repeat: per-step seconds and the training
time (tokenizer + world model + change gate); PSNR of the mean MSE, mean per-frame PSNR, SSIM
and LPIPS of the served model (the world model behind its change gate where the quickstart
trains one) beside copy-last-frame, whether it beats copy-last on all four; controllability;
the same measures of the world model without its gate; and play: frames/s, the lag and play
latency (below). Then, with several tokenizers, a line
naming the best tokenizer on each measure (means over repeats). The hardware is named and the
raw numbers go to results/bench_quickstart.json. Each repeat uses a fresh output directory and
records its dataset once (unless --data-dir is given), shared by its tokenizers' rows.

Play is measured as `wmkit play` steps a world model: a ``PlaySession`` reset on a held-out
clip, then ``--play-frames`` steps (after 8 of warm-up) through the ``WorldModel`` protocol,
each frame PNG-encoded as the server sends it. frames/s = steps / wall time; latency =
lag × frame period + mean step time (``wmkit.apps.play.latency``), the lag being
``StepOutput.lag`` (``k − 1`` frames for a ``k``-frame latent step, 0 per frame) and the frame
period ``wmkit play``'s at its default 15 frames/s, or the model's own when it is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wmkit.apps.quickstart import PRESETS, QuickstartPlan, run_quickstart
from wmkit.apps.quickstart.latent_tokenizers import LATENT_TOKENIZERS

#: ``wmkit play``'s default target frame rate
PLAY_FPS = 15.0
#: (column, row key, higher is better) of the measures the "best" line compares
MEASURES = (
    ("PSNR", "psnr", True),
    ("PSNR/frame", "psnr_frame_mean", True),
    ("SSIM", "ssim", True),
    ("LPIPS", "lpips", False),
    ("ΔPSNR controllability", "delta_psnr", True),
    ("training time", "training_s", False),
    ("play frames/s", "play_fps", True),
    ("play latency", "play_latency_ms", False),
)


def play_timing(
    world: Any, context: Callable[[], Tensor], device: str = "cpu", frames: int = 60
) -> dict[str, float]:
    """Play ``world`` as ``wmkit play`` does (module docstring): ``play_fps``,
    ``play_step_ms`` (mean step time), ``play_lag`` (frames) and ``play_latency_ms``."""
    from wmkit.apps.play.latency import play_latency
    from wmkit.apps.play.server import encode_png
    from wmkit.apps.play.session import PlaySession

    session = PlaySession(world, context=context, device=device)
    session.reset()
    warm_up = 8
    actions = world.action_spec.sample(
        (frames + warm_up,), generator=torch.Generator().manual_seed(0)
    )
    for a in actions[:warm_up]:
        encode_png(session.step(a))
    steps = []
    start = time.perf_counter()
    for a in actions[warm_up:]:
        t0 = time.perf_counter()
        frame = session.step(a)
        steps.append(time.perf_counter() - t0)
        encode_png(frame)
    wall = time.perf_counter() - start
    step = statistics.mean(steps)
    period = max(1.0 / PLAY_FPS, wall / frames)
    lag = session.timing.lag
    return {
        "play_fps": frames / wall,
        "play_step_ms": 1000 * step,
        "play_lag": lag,
        "play_latency_ms": 1000 * play_latency(lag, period, step),
    }


def run_row(plan: QuickstartPlan, play_frames: int) -> dict[str, Any]:
    """Run the quickstart of ``plan`` and play its world model: one table row."""
    from wmkit.apps.play.cli import _dataset_context
    from wmkit.core import load_pretrained

    start = time.perf_counter()
    result = run_quickstart(plan)
    total = time.perf_counter() - start
    world = load_pretrained(result.served_dir, map_location=plan.device)
    context = _dataset_context(plan.dataset, plan.context, 0, plan.data_options().get("resolution"))
    steps = result.durations
    return {
        "tokenizer": plan.tokenizer if plan.world == "diffusion" else "compressive (ar)",
        "repeat": plan.seed,
        "total_s": total,
        "steps_s": steps,
        "training_s": sum(steps.get(k, 0.0) for k in ("tokenizer", "world", "gate")),
        **play_timing(world, context, plan.device, play_frames),
        **{k: v for k, v in result.metrics.items() if k != "table"},
    }


HEAD = [
    "tokenizer", "repeat", "total (s)", "record", "tokenizer (s)", "world (s)", "gate (s)",
    "evaluate", "training (s)", "PSNR model", "PSNR copy-last", "PSNR tokenizer recon",
    "PSNR/frame model", "PSNR/frame copy-last", "SSIM model", "SSIM copy-last", "LPIPS model",
    "LPIPS copy-last",
    "beats copy-last (all four)", "tokenizer ceiling (PSNR, PSNR/frame, SSIM, LPIPS)",
    "ΔPSNR controllability",
    "world model without its gate (PSNR, PSNR/frame, SSIM, LPIPS, ΔPSNR)", "reward MSE (always 0)",
    "reward MSE one step (always 0)", "play frames/s", "play lag (frames)", "play step (ms)",
    "play latency (ms)",
]  # fmt: skip


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table_row(r: dict[str, Any]) -> list[str]:
    """The cells of one row (``HEAD``); "–" where the world model has no such figure."""
    s = r["steps_s"]
    reward = [
        "–" if r.get(k) is None else f"{r[k]:.4f} ({r[z]:.4f})"
        for k, z in (("reward_mse", "reward_mse_zero"),
                     ("reward_mse_one_step", "reward_mse_zero_one_step"))
    ]  # fmt: skip
    return [
        r["tokenizer"], str(r["repeat"]), f"{r['total_s']:.0f}",
        *(f"{s.get(k, 0):.0f}" for k in ("record", "tokenizer", "world", "gate", "evaluate")),
        f"{r['training_s']:.0f}", f"{r['psnr']:.2f}", f"{r['copy_last_psnr']:.2f}",
        _num(r.get("reconstruction_psnr"), ".2f"),
        f"{r['psnr_frame_mean']:.2f}", f"{r['copy_last_psnr_frame_mean']:.2f}",
        f"{r['ssim']:.3f}", f"{r['copy_last_ssim']:.3f}",
        _num(r.get("lpips"), ".4f"), _num(r.get("copy_last_lpips"), ".4f"),
        "yes" if r["beats_copy_last"] else "no",
        " / ".join(_num(r.get(f"reconstruction_{k}"), f) for k, f in
                   (("psnr", ".2f"), ("psnr_frame_mean", ".2f"), ("ssim", ".3f"),
                    ("lpips", ".4f"))),
        f"{r['delta_psnr']:+.2f}",
        alone_cell(r.get("world_alone") or {}), *reward,
        f"{r['play_fps']:.1f}", str(r["play_lag"]), f"{r['play_step_ms']:.1f}",
        f"{r['play_latency_ms']:.0f}",
    ]  # fmt: skip


def alone_cell(alone: dict[str, Any]) -> str:
    """The world model's own measures (without its change gate), or "–" when it has none."""
    if not alone:
        return "–"
    return (f"{alone['psnr']:.2f}, {alone['psnr_frame_mean']:.2f}, {alone['ssim']:.3f}, "
            f"{_num(alone.get('lpips'), '.4f')}, {alone['delta_psnr']:+.2f}")  # fmt: skip


def winners(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The best tokenizer on each of :data:`MEASURES` (mean over its rows; ties named
    together; a measure some row lacks is left out)."""
    by_tokenizer: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_tokenizer.setdefault(r["tokenizer"], []).append(r)
    best = {}
    for label, key, higher in MEASURES:
        if any(r.get(key) is None for r in rows):
            continue
        means = {t: statistics.mean(r[key] for r in rs) for t, rs in by_tokenizer.items()}
        top = max(means.values()) if higher else min(means.values())
        best[label] = " = ".join(t for t, m in means.items() if m == top)
    return best


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for r in rows:
        print("| " + " | ".join(table_row(r)) + " |")
    if len({r["tokenizer"] for r in rows}) > 1:
        best = winners(rows)
        print("\nbest: " + "; ".join(f"{label}: {t}" for label, t in best.items()))


def tokenizers(value: str) -> list[str]:
    """``--tokenizer``'s comma-separated names, checked."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in LATENT_TOKENIZERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"--tokenizer takes names from {sorted(LATENT_TOKENIZERS)}, comma-separated; got "
            f"{value!r}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--device", default=None)
    p.add_argument("--size", default=None, help="world model size override")
    p.add_argument("--world", default=None, choices=["ar", "diffusion"], help="world model family")
    p.add_argument("--tokenizer", type=tokenizers, default=["per-frame"],
                   help="diffusion tokenizers, comma-separated: per-frame, vidtok-4x")  # fmt: skip
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--play-frames", type=int, default=60, help="play steps measured")
    p.add_argument("--data-dir", type=Path, help="reuse a recorded dataset (skips recording time)")
    p.add_argument("--keep", type=Path, help="keep each run under KEEP/<tokenizer>-s<repeat>")
    p.add_argument("--out", type=Path, default=Path("results/bench_quickstart.json"))
    args = p.parse_args(argv)

    changes = dict(PRESETS[args.preset])
    for name, value in (("device", args.device), ("world_size", args.size), ("world", args.world)):
        if value:
            changes[name] = value
    rows = []
    for repeat in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="wmkit-bench-quickstart-"))
        for name in args.tokenizer:
            run = (args.keep or work) / f"{name}-s{repeat}"
            plan = QuickstartPlan(
                out=run, data_dir=args.data_dir or work / "data", tokenizer=name, seed=repeat
            ).scaled(**changes)
            rows.append(run_row(plan, args.play_frames))
        shutil.rmtree(work, ignore_errors=True)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}"
    world = QuickstartPlan().scaled(**changes).world
    print_table(rows, f"wmkit quickstart --preset {args.preset} --world {world} ({hardware})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"preset": args.preset, "hardware": hardware, "runs": rows}
    if len(args.tokenizer) > 1:
        report["best"] = winners(rows)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
