"""Time `wmkit quickstart` end to end and print whether its world model beats copy-last-frame.

    uv run python tools/bench_quickstart.py                   # the default budget (~15 min target)
    uv run python tools/bench_quickstart.py --preset tiny     # a quick check

Prints a Markdown table (per-step seconds; PSNR of the mean MSE, mean per-frame PSNR, SSIM
and LPIPS of the model beside copy-last-frame, whether it beats copy-last on all four;
controllability) with
the hardware named and writes the raw numbers to results/bench_quickstart.json. Each run
uses a fresh output directory (the dataset is re-recorded too, unless --data-dir is given),
so the timing includes every step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from wmkit.apps.quickstart import PRESETS, QuickstartPlan, run_quickstart


def play_fps(world_dir: Path, data: Path, context: int, device: str, frames: int = 60) -> float:
    """Frames/s of `wmkit play`'s per-frame work with this world model: one ``PlaySession``
    step (world model step + token decoding) and the PNG encoding sent to the browser."""
    from wmkit.apps.play.cli import _dataset_context
    from wmkit.apps.play.server import encode_png
    from wmkit.apps.play.session import PlaySession
    from wmkit.core import load_pretrained

    world = load_pretrained(world_dir, map_location=device)
    session = PlaySession(
        world, context=_dataset_context(data, context, 0), context_frames=context, device=device
    )
    session.reset()
    spec = world.action_spec
    actions = spec.sample((frames + 5,), generator=torch.Generator().manual_seed(0))
    for a in actions[:5]:  # warm-up
        encode_png(session.step(a))
    start = time.perf_counter()
    for a in actions[5:]:
        encode_png(session.step(a))
    return frames / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--device", default=None)
    p.add_argument("--size", default=None, help="world model size override")
    p.add_argument("--world", default=None, choices=["ar", "diffusion"], help="world model family")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--data-dir", type=Path, help="reuse a recorded dataset (skips recording time)")
    p.add_argument("--out", type=Path, default=Path("results/bench_quickstart.json"))
    args = p.parse_args()

    changes = dict(PRESETS[args.preset])
    if args.device:
        changes["device"] = args.device
    if args.size:
        changes["world_size"] = args.size
    if args.world:
        changes["world"] = args.world
    rows = []
    for repeat in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="wmkit-bench-quickstart-"))
        plan = QuickstartPlan(
            out=work / "run", data_dir=args.data_dir or work / "data", seed=repeat
        ).scaled(**changes)
        start = time.perf_counter()
        result = run_quickstart(plan)
        total = time.perf_counter() - start
        fps = play_fps(result.world_dir, plan.dataset, plan.context, plan.device)
        rows.append(
            {
                "repeat": repeat,
                "total_s": total,
                "steps_s": result.durations,
                "play_fps": fps,
                **{k: v for k, v in result.metrics.items() if k != "table"},
            }
        )
        shutil.rmtree(work, ignore_errors=True)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}"
    world = QuickstartPlan().scaled(**changes).world
    print(f"\nwmkit quickstart --preset {args.preset} --world {world} ({hardware})\n")
    head = [
        "repeat",
        "total (s)",
        "record",
        "tokenizer",
        "world",
        "evaluate",
        "PSNR model",
        "PSNR copy-last",
        "PSNR tokenizer recon",
        "PSNR/frame model",
        "PSNR/frame copy-last",
        "SSIM model",
        "SSIM copy-last",
        "LPIPS model",
        "LPIPS copy-last",
        "beats copy-last (all four)",
        "ΔPSNR controllability",
        "reward MSE (always 0)",
        "reward MSE one step (always 0)",
        "play FPS",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        s = r["steps_s"]
        cells = [
            r["repeat"], f"{r['total_s']:.0f}",
            *(f"{s.get(k, 0):.0f}" for k in ("record", "tokenizer", "world", "evaluate")),
            f"{r['psnr']:.2f}", f"{r['copy_last_psnr']:.2f}",
            "–" if r.get("reconstruction_psnr") is None else f"{r['reconstruction_psnr']:.2f}",
            f"{r['psnr_frame_mean']:.2f}", f"{r['copy_last_psnr_frame_mean']:.2f}",
            f"{r['ssim']:.3f}", f"{r['copy_last_ssim']:.3f}",
            *(("–", "–") if r.get("lpips") is None
              else (f"{r['lpips']:.4f}", f"{r['copy_last_lpips']:.4f}")),
            "yes" if r["beats_copy_last"] else "no", f"{r['delta_psnr']:+.2f}",
            "–" if r.get("reward_mse") is None
            else f"{r['reward_mse']:.4f} ({r['reward_mse_zero']:.4f})",
            "–" if r.get("reward_mse_one_step") is None
            else f"{r['reward_mse_one_step']:.4f} ({r['reward_mse_zero_one_step']:.4f})",
            f"{r['play_fps']:.1f}",
        ]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"preset": args.preset, "hardware": hardware, "runs": rows}, indent=2)
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
