"""Benchmark wmkit.ar_world: rollout speed (raster vs diagonal, KV cache vs none; diagonal
decoding within a frame vs across frames) and quality (next-frame / 8-step PSNR and SSIM vs
copy-last-frame, action controllability).

    uv run --no-sync python tools/bench_ar_world.py --quick
    uv run --no-sync python tools/bench_ar_world.py --quick --part cross_frame

Speed uses untrained weights (speed does not depend on them) and core's ToyTokenizer at 4x
down, with frames sized so the grid is 16x16 (64x64 frames) or MineWorld's 24x14 (96x56).
Quality trains the model for a fixed number of steps on moving squares (core's
MovingSquaresDataModule, generated in memory) and evaluates greedy rollouts on held-out
episodes. ``--part crafter`` measures quality on held-out *recorded* Crafter episodes at
36x36 (recorded into ``--data`` when missing, ~3 min): a PatchVQTokenizer (one token per
tile) and a ``small`` model trained for ``--budget-s`` seconds of wall clock (the step count,
and so the figures, move with the machine's speed and load):

    uv run --no-sync python tools/bench_ar_world.py --part crafter --threads 2

On a GPU, ``--part gpu`` measures the 300M model in bf16 (eager, CUDA graphs,
``compile_decoding``) and its training MFU; ``--profile`` adds one frame under
``torch.profiler`` per real-time setting, and ``--grids 24x14 --skip-train`` fits it into a
short lease:

    python tools/bench_ar_world.py --part gpu --device cuda --size 300M --max-frames 4 \
        --grids 24x14 --skip-train --profile

Prints Markdown tables and writes raw numbers to results/bench_ar_world[_PART].json (the
Crafter part also a GIF of rollouts and a PSNR-per-step plot next to it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from ar_world_bench.crafter import crafter_quality, print_crafter
from ar_world_bench.gpu import gpu_profile, gpu_speed, gpu_train, print_gpu, print_profile
from ar_world_bench.speed import cross_frame_speed, print_cross_frame, print_speed, speed
from ar_world_bench.toy_quality import print_quality, quality


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default=None, help="model size (default: tiny; crafter: small)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--part", choices=("all", "speed", "cross_frame", "quality", "crafter", "gpu"),
        default="all",
        help="run only one section; 'crafter' (not in 'all'): quality on held-out recorded "
        "Crafter episodes after --budget-s of training; 'gpu' (not in 'all'): bf16 rollout "
        "speed with CUDA graphs and training MFU, on --device cuda",
    )  # fmt: skip
    p.add_argument("--data", default="data/crafter-36", help="crafter: 36x36 recording")
    p.add_argument("--episodes", type=int, default=48, help="crafter: episodes used")
    p.add_argument("--held-out", type=int, default=8, help="crafter: last episodes held out")
    p.add_argument("--codes", type=int, default=64, help="crafter: patch-VQ codebook size")
    p.add_argument("--budget-s", type=float, default=1200.0, help="crafter: training seconds")
    p.add_argument("--clip", type=int, default=4, help="crafter: training clip (frames)")
    p.add_argument("--batch", type=int, default=8, help="crafter: training batch (clips)")
    p.add_argument("--lr", type=float, default=2e-3, help="crafter: peak learning rate")
    p.add_argument("--horizon", type=int, default=8, help="crafter: rollout steps")
    p.add_argument("--stride", type=int, default=10, help="crafter: frames between clips")
    p.add_argument(
        "--offsets", type=int, nargs="+", default=[1],
        help="crafter: also evaluate diagonal decoding at these row offsets",
    )  # fmt: skip
    p.add_argument("--max-frames", type=int, default=4, help="gpu: context window in frames")
    p.add_argument("--train-batch", type=int, default=8, help="gpu: training batch (clips)")
    p.add_argument("--skip-train", action="store_true", help="gpu: rollout speed only")
    p.add_argument("--profile", action="store_true", help="gpu: also profile one frame's ticks")
    p.add_argument(
        "--grids", nargs="+", default=["24x14", "16x16"], choices=["24x14", "16x16"],
        help="gpu: token grids of the speed rows",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="default results/bench_ar_world[_PART].json")
    args = p.parse_args()
    if args.size is None:
        args.size = "small" if args.part == "crafter" else "tiny"
    if args.out is None:
        suffix = "" if args.part == "all" else f"_{args.part}"
        args.out = f"results/bench_ar_world{suffix}.json"
    if args.part == "gpu" and not args.device.startswith("cuda"):
        p.error("--part gpu needs --device cuda")
    return args


def main() -> None:
    args = parse_args()
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
    craft = crafter_quality(args) if part == "crafter" else None
    gpu_rows = gpu_speed(args) if part == "gpu" else []
    train_rows = gpu_train(args) if part == "gpu" and not args.skip_train else []
    prof_rows = gpu_profile(args) if part == "gpu" and args.profile else []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "hardware": hardware, "args": vars(args), "speed": speed_rows,
        "cross_frame": cross_rows, "quality": qual, "gpu_speed": gpu_rows,
        "gpu_train": train_rows, "gpu_profile": prof_rows, "crafter": craft,
    }  # fmt: skip
    out.write_text(json.dumps(payload, indent=2))
    if speed_rows:
        print_speed(args, hardware, speed_rows)
    if cross_rows:
        print_cross_frame(args, hardware, cross_rows)
    if qual is not None:
        print_quality(args, qual)
    if craft is not None:
        print_crafter(args, hardware, craft)
    if gpu_rows:
        print_gpu(args, hardware, gpu_rows, train_rows)
    if prof_rows:
        print_profile(args, hardware, prof_rows)
    print(f"\nraw numbers: {out}")


if __name__ == "__main__":
    main()
