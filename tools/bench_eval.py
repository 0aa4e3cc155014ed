"""Metric speed: PSNR / SSIM / LPIPS / FVD-feature (I3D) throughput.

    uv run python tools/bench_eval.py --quick            # CPU, a few minutes
    uv run python tools/bench_eval.py --device cuda --size base --repeats 20

Prints a Markdown table and writes raw numbers to results/bench_eval.json. LPIPS and I3D
use the converted weights when cached (`wmkit eval weights`), else random weights of the same
architecture (same speed; the table says which).
"""

from __future__ import annotations

import argparse

import torch

from wmkit.core.weights import lpips_weights_name, weights_path
from wmkit.eval.frame_metrics import frame_lpips, frame_psnr, frame_ssim
from wmkit.eval.fvd import I3DFeatures
from wmkit.eval.i3d import I3D, I3D_WEIGHTS_NAME
from wmkit.eval.throughput import count_flops, markdown_table, measure, write_results

SIZES = {  # batch, frames, resolution (frame metrics); clips, frames (I3D at 224x224)
    "small": {"batch": 4, "frames": 8, "res": 32, "clips": 1, "clip_frames": 16},
    "base": {"batch": 8, "frames": 16, "res": 64, "clips": 2, "clip_frames": 16},
    "large": {"batch": 16, "frames": 16, "res": 128, "clips": 8, "clip_frames": 16},
}


def _lpips(device: str):
    from safetensors.torch import save_file

    from wmkit.core.lpips import LPIPS

    path = weights_path(lpips_weights_name("alex"))
    if path.is_file():
        return LPIPS("alex").to(device), "converted"
    # Same architecture with random weights (timing only), via a temporary file.
    import tempfile

    import wmkit.core.lpips as lp

    tmp = tempfile.mkdtemp() + "/lpips-random.safetensors"
    net = torch.nn.Module()
    net.features = lp._alexnet_features()
    net.lins = torch.nn.ModuleList(
        torch.nn.Conv2d(c, 1, 1, bias=False) for c in lp._CHANNELS["alex"]
    )
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    return LPIPS("alex", weights=tmp).to(device), "random (weights not cached)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", choices=list(SIZES), default="base")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    p.add_argument("--out", default="results/bench_eval.json")
    args = p.parse_args()
    cfg = SIZES[args.size]
    repeats, warmup = (3, 1) if args.quick else (args.repeats, 2)
    dev = args.device
    g = torch.Generator().manual_seed(0)
    shape = (cfg["batch"], cfg["frames"], 3, cfg["res"], cfg["res"])
    target = (torch.rand(shape, generator=g) * 2 - 1).to(dev)
    pred = (target + 0.1 * torch.randn(shape, generator=g).to(dev)).clamp(-1, 1)
    frames = cfg["batch"] * cfg["frames"]
    res = f"{cfg['res']}x{cfg['res']}"
    results = []
    inp = {"input": f"{shape[0]}x{shape[1]} @ {res}"}
    common = {"device": dev, "repeats": repeats, "warmup": warmup, "unit": "frames"}
    with torch.no_grad():
        results.append(measure(lambda: frame_psnr(pred, target), name="PSNR", items=frames,
                               extra=inp, **common))  # fmt: skip
        results.append(measure(lambda: frame_ssim(pred, target), name="SSIM", items=frames,
                               extra=inp, **common))  # fmt: skip
        lpips, lpips_w = _lpips(dev)
        fn = lambda: frame_lpips(pred, target, lpips)  # noqa: E731
        results.append(measure(fn, name=f"LPIPS-alex ({lpips_w})", items=frames,
                               flops=count_flops(fn),
                               extra=inp, **common))  # fmt: skip
        i3d_cached = weights_path(I3D_WEIGHTS_NAME).is_file()
        i3d = (I3D() if i3d_cached else I3D.random()).to(dev)
        feats = I3DFeatures(i3d)
        clip_shape = (cfg["clips"], cfg["clip_frames"], 3, cfg["res"], cfg["res"])
        clips = (torch.rand(clip_shape, generator=g) * 2 - 1).to(dev)
        fn = lambda: feats(clips)  # noqa: E731
        name = f"FVD features: I3D ({'converted' if i3d_cached else 'random weights'})"
        results.append(measure(fn, name=name, items=cfg["clips"] * cfg["clip_frames"],
                               flops=count_flops(fn),
                               extra={"input": f"{clip_shape[0]}x{clip_shape[1]} @ {res}→224"},
                               **common))  # fmt: skip
    print(f"\nbench_eval --size {args.size} --device {dev} (repeats {repeats}, warm-up {warmup})\n")
    print(markdown_table(results, extra_columns=["input"]))
    path = write_results(args.out, results, device=dev, config={**cfg, "size": args.size})
    print(f"\nraw numbers: {path}")


if __name__ == "__main__":
    main()
