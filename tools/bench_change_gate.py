"""Explore a fixed "no change" gate on a trained quickstart diffusion world model (issue #36).

Copy-last-frame is exact wherever nothing moves; a world model returns its tokenizer's and its
sampler's error there, which costs it the mean per-frame PSNR and SSIM. This benchmark wraps a
kept quickstart world model so that every generated frame is replaced by the last context
frame in each ``patch``×``patch`` block whose mean absolute change from that frame is below
``tau``, then scores it with the quickstart's own evaluation (held-out clips, 2 context frames,
6 predicted) beside copy-last-frame, for several ``(tau, patch)``:

    uv run python tools/bench_quickstart.py --keep /tmp/runs          # trains and keeps the run
    uv run wmkit record crafter --episodes 48 --out /tmp/crafter32 --resolution 32 --seed 0 \
        --policy explore --format npz --max-steps 120                 # the run's recording
    uv run python tools/bench_change_gate.py --run /tmp/runs/per-frame-s0 --data /tmp/crafter32

Prints a Markdown table: the four image measures and controllability (ΔPSNR true vs random
actions) per gate. ``--gated DIR ...`` adds rows for learned gates (``GatedWorldModel``
directories, e.g. from ``wmkit gate fit -c RUN/configs/gate.yaml --export_dir DIR`` with other
``--model.init_args.*`` settings), scored the same way.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import StepOutput, StepwiseRolloutMixin, load_pretrained
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.eval import evaluate_rollouts
from wmkit.eval.frame_metrics import lpips_if_available

MEASURES = ("psnr", "psnr_frame_mean", "ssim", "lpips")


class ChangeGated(nn.Module, StepwiseRolloutMixin):
    """``world`` whose frames keep the last context frame in every ``patch`` block that
    changed by less than ``tau`` (mean absolute difference, pixels in [-1, 1])."""

    def __init__(self, world: Any, tau: float, patch: int) -> None:
        super().__init__()
        self.world, self.tau, self.patch = world, tau, patch

    @property
    def action_spec(self) -> Any:
        return self.world.action_spec

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> tuple:
        return self.world.reset(context_frames, context_actions), context_frames[:, -1]

    def step(self, state: tuple, action: Tensor) -> StepOutput:
        inner, anchor = state
        out = self.world.step(inner, action)
        change = F.avg_pool2d((out.frame - anchor).abs().mean(1, keepdim=True), self.patch)
        still = F.interpolate((change < self.tau).float(), scale_factor=self.patch) > 0.5
        frame = torch.where(still, anchor, out.frame)
        return StepOutput(frame, out.reward, (out.state, anchor), out.done)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a kept quickstart run (bench_quickstart --keep)")
    p.add_argument("--data", required=True, help="its recording (same env, seed and size)")
    p.add_argument("--taus", type=float, nargs="*", default=[0.02, 0.05, 0.1, 0.2])
    p.add_argument("--patches", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--gated", nargs="*", default=[], help="learned gated models to score too")
    args = p.parse_args()
    torch.set_num_threads(1)
    world = load_pretrained(f"{args.run}/world")
    tokenizer = load_pretrained(f"{args.run}/tokenizer")
    data = EpisodeDataModule(args.data, clip_length=8, batch_size=8, split=(0.8, 0.1, 0.1),
                             seed=0, resolution=args.resolution)  # fmt: skip
    data.setup("test")
    lpips = lpips_if_available("alex", torch.device("cpu"))
    print("| gate (tau, patch) | PSNR | PSNR/frame | SSIM | LPIPS | ΔPSNR controllability |")
    print("|---|---|---|---|---|---|")
    gates: list[tuple[str, Any]] = [("none", world)]
    gates += [(f"{t:g}, {q}", ChangeGated(world, t, q)) for q in args.patches for t in args.taus]
    gates += [(f"learned: {d}", load_pretrained(d)) for d in args.gated]
    for name, model in gates:
        ev = evaluate_rollouts(model, data.test_dataloader(), context=2, horizon=6,
                               tokenizer=tokenizer, lpips=lpips, max_batches=4, seed=0,
                               device=torch.device("cpu"))  # fmt: skip
        m, c = ev.overall["model"], ev.overall["copy_last_frame"]
        cells = " | ".join(f"{m[k]:.4g} ({c[k]:.4g})" for k in MEASURES)
        print(f"| {name} | {cells} | {ev.controllability['delta_psnr']:+.2f} |", flush=True)
    print("\n(copy-last-frame in parentheses)")


if __name__ == "__main__":
    main()
