"""Timing helpers of the speed sections: device sync, forward-pass counting, rollout frames/s."""

from __future__ import annotations

import argparse
import time

import torch

from wmkit.ar_world import ARWorldModel


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_passes(model: ARWorldModel) -> list[int]:
    """Make ``model`` append 1 to the returned list at each forward pass (``run``)."""
    passes: list[int] = []
    run = model.run

    def counted(state, x, positions):
        passes.append(1)
        return run(state, x, positions)

    model.run = counted
    return passes


def rollout_fps(model, context, actions, warmup, args: argparse.Namespace) -> list[float]:
    """Frames/s of ``model.rollout(context, actions)`` over ``args.repeats`` timed runs, after
    one warm-up rollout over ``warmup`` actions."""
    model.rollout(context, warmup)
    times = []
    for _ in range(args.repeats):
        sync(args.device)
        t0 = time.perf_counter()
        model.rollout(context, actions)
        sync(args.device)
        times.append(time.perf_counter() - t0)
    return [actions.shape[1] / t for t in times]
