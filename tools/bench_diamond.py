"""Benchmark DIAMOND world models at the released widths: next-frame latency and frames/s.

    uv run python tools/bench_diamond.py --device cpu --size atari --repeats 3
    uv run python tools/bench_diamond.py --device cuda --size atari csgo --repeats 20

Each model is a :class:`~wmkit.diffusion_world.diamond.DiamondWorldModel` built with the
arguments ``wmkit convert diamond`` gives the released checkpoints (random weights: speed does
not depend on the values), batch 1, with the released sampler settings:

- ``atari``: 64x64 frames, 9 actions, 3-step Euler;
- ``csgo``: 30x56 next frame (``s_cond`` re-noising) then the x5 upsampler to 150x280, for
  each ``--preset`` (``fast``: 1 + 1 steps; ``higher_quality``: 3 + 10).

``--layout`` stores the networks' weights (and so their activations) ``channels_last`` (the
default: oneDNN and cuDNN convolve NHWC without reordering every call; 1.7x faster on a
2-core CPU for Atari) or ``contiguous`` (PyTorch's NCHW default), or both, one row each.

One timed call is ``step`` (next frame, and for CS:GO its upsampling), after ``--warmup``
calls; CUDA is synchronised around each. Prints a Markdown table (median latency with
min–max, and frames/s = 1 / median latency) and writes the raw numbers to
``results/bench_diamond.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from bench_common import hardware_line, sync

from wmkit.core import ActionSpec
from wmkit.diffusion_world.convert_diamond import CSGO_PRESETS
from wmkit.diffusion_world.diamond import DIAMOND_NETWORK_SIZES, DiamondWorldModel

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("atari", "csgo")


def build(size: str, preset: str) -> tuple[DiamondWorldModel, tuple[int, int]]:
    """The released-width world model (random weights) and its output frame size."""
    torch.manual_seed(0)
    if size == "atari":
        return DiamondWorldModel(ActionSpec.discrete(9), network=None), (64, 64)
    net = dict(DIAMOND_NETWORK_SIZES["csgo"])
    up_net = {k: v for k, v in DIAMOND_NETWORK_SIZES["csgo_upsampler"].items() if k != "upsampler"}
    world = DiamondWorldModel(
        ActionSpec.multi_discrete([2] * 51),
        network=net,
        objective={"sigma_offset_noise": 0.1},
        sampler=CSGO_PRESETS[preset]["next_obs"],
        noise_previous_obs=True,
        upsampler={
            "network": up_net,
            "objective": {"sigma_offset_noise": 0.1},
            "sampler": CSGO_PRESETS[preset]["upsampling"],
        },
    )
    return world, (150, 280)


LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def bench(
    size: str, preset: str, device: str, repeats: int, warmup: int, layout: str = "channels_last"
) -> dict[str, Any]:
    world, (h, w) = build(size, preset)
    world = world.to(device, memory_format=LAYOUTS[layout]).eval()
    g = torch.Generator(device=device).manual_seed(0)
    frames = torch.rand(1, world.num_steps_conditioning, 3, h, w, generator=g, device=device)
    frames = frames * 2 - 1
    acts = world.action_spec.sample((1, world.num_steps_conditioning)).to(device)
    state = world.reset(frames, acts[:, :-1])
    times = []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        out = world.step(state, acts[:, -1], generator=g)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        state = out.state
    med = statistics.median(times)
    return {
        "size": size,
        "preset": preset if size == "csgo" else "released",
        "layout": layout,
        "frame": [h, w],
        "params": sum(p.numel() for p in world.parameters()),
        "denoising_steps": world.sampler.config.num_steps_denoising,
        "upsampling_steps": None
        if world.up_sampler is None
        else world.up_sampler.config.num_steps_denoising,
        "latency_ms_median": 1000 * med,
        "latency_ms_min": 1000 * min(times),
        "latency_ms_max": 1000 * max(times),
        "fps": 1 / med,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--preset", nargs="+", default=["fast"], choices=sorted(CSGO_PRESETS),
                        help="CS:GO sampler presets")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layout", nargs="+", default=["channels_last"], choices=sorted(LAYOUTS),
                        help="weight memory formats, one row each")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "results" / "bench_diamond.json"))
    args = parser.parse_args()
    rows = []
    for size in args.size:
        for preset in args.preset if size == "csgo" else ["released"]:
            for layout in args.layout:
                row = bench(size, preset, args.device, args.repeats, args.warmup, layout)
                rows.append(row)
                print(f"  {size} {row['preset']} {layout}: {row['latency_ms_median']:.1f} ms",
                      file=sys.stderr, flush=True)  # fmt: skip
    hardware = hardware_line(args.device)
    date = datetime.date.today().isoformat()
    print(f"\n{hardware}; batch 1, random weights, fp32; {args.repeats} repeat(s); {date}\n")
    print("| model | sampler | layout | frame | params | steps | next-frame latency ms (median, "
          "min–max) | frames/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps = str(r["denoising_steps"])
        if r["upsampling_steps"] is not None:
            steps += f" + {r['upsampling_steps']} (upsampling)"
        spread = f"{r['latency_ms_min']:.1f}–{r['latency_ms_max']:.1f}"
        print(f"| {r['size']} | {r['preset']} | {r['layout']} | {r['frame'][0]}x{r['frame'][1]} | "
              f"{r['params'] / 1e6:.1f} M | {steps} | {r['latency_ms_median']:.1f} ({spread}) "
              f"| {r['fps']:.2f} |")  # fmt: skip
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hardware": hardware, "date": date, "rows": rows}, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
