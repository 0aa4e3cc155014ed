"""Rollout speed rows of the diffusion-world benchmark: the tiny networks vs denoising steps, the
real-size DiT on a GPU, and the history cache."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from bench_common import sync

from diffusion_world_bench.models import flat_world_model, model_kwargs
from wmkit.core import ActionSpec


def speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    spec = ActionSpec.discrete(17)
    for network, size in (("dit", 32), ("svd_unet", 32)):
        for steps in (1, 2) if (args.quick and network == "svd_unet") else (1, 2, 4, 8):
            torch.manual_seed(0)
            kwargs = {"context_window": 8} if network == "svd_unet" else model_kwargs(args)
            model = flat_world_model(
                spec, network=network, image_size=size,
                **{**kwargs, "num_sampling_steps": steps, "guidance_scale": 1.5},
            ).eval().to(args.device)  # fmt: skip
            ctx = torch.zeros(1, 4, 3, size, size, device=args.device)
            n = 4 if network == "svd_unet" else 8
            acts = torch.randint(0, 17, (1, n), device=args.device)
            model.rollout(ctx, acts[:, :2])  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model.rollout(ctx, acts)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            fps = [n / t for t in times]
            rows.append({"network": network, "resolution": size, "steps": steps,
                         "fps_median": statistics.median(fps),
                         "fps_min": min(fps), "fps_max": max(fps)})  # fmt: skip
    return rows


def gpu_speed(args: argparse.Namespace) -> list[dict]:
    """Real-size rollout frames/s on a GPU, batch 1, bf16 autocast: the DiT-base of
    ``configs/crafter_dit_base.yaml`` (64x64 pixels, patch 4, 16-frame window, guidance 1.5)
    vs denoising steps, with and without guidance (guidance doubles the network's batch), eager
    and with CUDA graphs (``cuda_graphs=True``, checked against eager on the same inputs), with
    the history cache rebuilt per frame, off, or carried (``carry_history``; last, so that a
    time limit cuts those rows first)."""
    rows = []
    spec = ActionSpec.discrete(17)
    settings = [(1.5, s, False, True, False) for s in (1, 2, 4, 8)]  # eager: with guidance only
    settings += [(g, s, True, c, False) for c in (True, False) for g in (1.5, 1.0)
                 for s in (1, 2, 4, 8)]  # fmt: skip
    settings += [(g, s, True, True, True) for g in (1.5, 1.0) for s in (1, 4)]
    for guidance, steps, graphs, cache, carry in settings:
        torch.manual_seed(0)
        model = flat_world_model(
            spec, network="dit", size="base", network_kwargs={"patch_size": 4},
            image_size=64, num_sampling_steps=steps, guidance_scale=guidance,
            context_window=16, history_noise_level=0 if carry else 20, cuda_graphs=graphs,
            history_cache=cache, carry_history=carry,
        ).eval().to(args.device)  # fmt: skip
        ctx = torch.rand(1, 4, 3, 64, 64, device=args.device) * 2 - 1
        n = 24  # past the 16-frame window: the steady state of play
        acts = torch.randint(0, 17, (1, n), device=args.device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model.rollout(ctx, acts[:, :14])  # warm-up
            times = []
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model.rollout(ctx, acts)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        fps = [n / t for t in times]
        same = None
        if graphs:  # the graphed network against the eager one on the same inputs
            with torch.autocast("cuda", dtype=torch.bfloat16):
                torch.manual_seed(1)
                a = model.rollout(ctx, acts[:, :3]).frames
                model.cuda_graphs = False
                torch.manual_seed(1)
                b = model.rollout(ctx, acts[:, :3]).frames
            same = float((a.float() - b.float()).abs().max())
        row = {"network": "dit-base", "resolution": 64, "steps": steps,
               "cuda_graphs": graphs, "history_cache": cache, "carry_history": carry,
               "history_noise_level": 0 if carry else 20,
               "graphed_vs_eager_max_abs": same,
               "guidance_scale": guidance, "context_window": 16, "dtype": "bf16 autocast",
               "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
               "fps_median": statistics.median(fps), "fps_min": min(fps),
               "fps_max": max(fps)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# --history-cache networks: a 32x32-pixel model of each family (UNets: no residual option)
CACHE_NETWORKS = {
    "dit": ({"patch_size": 4, "hidden_size": 128, "depth": 4, "num_heads": 4}, True),
    "unet3d": ({"block_out_channels": (32, 64), "norm_num_groups": 8}, False),
    "svd_unet": ({"block_out_channels": (64, 64)}, False),
    "wan": (
        {
            "patch_size": (1, 4, 4),
            "num_attention_heads": 4,
            "attention_head_dim": 24,
            "num_layers": 4,
            "ffn_dim": 384,
        },
        False,
    ),
}


def history_cache_speed(args: argparse.Namespace) -> list[dict]:
    """Rollout frames/s without the history cache, with it (``history_cache``: the history
    encoded once per frame, each denoising step on the new frame alone) and with it carried
    across frames (``carry_history``: each new frame appended, the history cut to 8 frames
    when the 16-frame window fills) vs denoising steps and guidance, past the window, for
    ``--cache-network`` (the DiT, or a causalized diffusers UNet). Each cached rollout is
    compared with the uncached one on the same seed (max abs difference of the frames); a
    carried one differs by design once the window is full."""
    rows = []
    spec = ActionSpec.discrete(17)
    net, residual = CACHE_NETWORKS[args.cache_network]
    size = {} if args.cache_network == "dit" else {"size": "tiny"}
    n = 20  # past the 16-frame window: the steady state of play
    for guidance in (1.0, 1.5):
        for steps in (1, 2, 4) if args.quick else (1, 2, 4, 8):
            frames = {}
            for cache, carry in ((False, False), (True, False), (True, True)):
                torch.manual_seed(0)
                model = flat_world_model(
                    spec, network=args.cache_network, network_kwargs=net, image_size=32,
                    num_sampling_steps=steps, guidance_scale=guidance, context_window=16,
                    objective="edm", residual=residual, history_cache=cache,
                    carry_history=carry, **size,
                ).eval().to(args.device)  # fmt: skip
                with torch.no_grad():  # adaLN-Zero's zeros would make every output equal
                    for q in model.parameters():
                        if q.abs().sum() == 0:
                            q.normal_(0, 0.02)
                ctx = torch.rand(1, 4, 3, 32, 32, device=args.device) * 2 - 1
                acts = torch.randint(0, 17, (1, n), device=args.device)
                model.rollout(ctx, acts[:, :14])  # warm-up
                times = []
                for _ in range(args.repeats):
                    torch.manual_seed(1)
                    sync(args.device)
                    t0 = time.perf_counter()
                    frames[cache, carry] = model.rollout(ctx, acts).frames
                    sync(args.device)
                    times.append(time.perf_counter() - t0)
                fps = [n / t for t in times]
                row = {"network": args.cache_network, "steps": steps,
                       "guidance_scale": guidance, "history_cache": cache,
                       "carry_history": carry,
                       "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
                       "fps_median": statistics.median(fps), "fps_min": min(fps),
                       "fps_max": max(fps)}  # fmt: skip
                if cache:
                    diff = (frames[cache, carry] - frames[False, False]).abs().max()
                    row["max_abs_diff_vs_none"] = float(diff)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def _print_cache_table(rows: list[dict], extra: str, key: str, digits: int) -> None:
    print(f"| denoising steps | guidance | history cache | {extra} | frames/s (median) | min–max |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        value = r.get(key)
        shown = "–" if value is None else ("yes" if value is True else "no" if value is False
                                           else f"{value:.1e}")  # fmt: skip
        cache = "yes" if r.get("history_cache", True) else "no"
        if r.get("carry_history"):
            cache = "carried (refresh to 8)"
        print(f"| {r['steps']} | {r['guidance_scale']:g} | {cache} | {shown} | "
              f"{r['fps_median']:.{digits}f} | "
              f"{r['fps_min']:.{digits}f}–{r['fps_max']:.{digits}f} |")  # fmt: skip
