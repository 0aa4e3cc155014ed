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
import contextlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional import structural_similarity_index_measure as ssim

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyTokenizer, moving_squares


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _count_passes(model: ARWorldModel) -> list[int]:
    """Make ``model`` append 1 to the returned list at each forward pass (``_run``)."""
    passes: list[int] = []
    run = model._run

    def counted(state, x, positions):
        passes.append(1)
        return run(state, x, positions)

    model._run = counted
    return passes


def _rollout_fps(model, context, actions, warmup, args: argparse.Namespace) -> list[float]:
    """Frames/s of ``model.rollout(context, actions)`` over ``args.repeats`` timed runs, after
    one warm-up rollout over ``warmup`` actions."""
    model.rollout(context, warmup)
    times = []
    for _ in range(args.repeats):
        _sync(args.device)
        t0 = time.perf_counter()
        model.rollout(context, actions)
        _sync(args.device)
        times.append(time.perf_counter() - t0)
    return [actions.shape[1] / t for t in times]


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
                spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w), size=args.size,
                max_frames=4, decoding=decoding, window=args.window, use_cache=cache,
                temperature=1.0, compile_decoding=compiled,
            ).to(args.device).eval()  # fmt: skip
            context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
            actions = spec.sample((1, steps)).to(args.device)
            fps = _rollout_fps(model, context, actions, actions[:, :1], args)
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
            spec, ToyTokenizer(patch=4, levels=4), frame_size=(h, w), size=args.size,
            max_frames=8, decoding=decoding, window=args.window, temperature=1.0,
            cross_frame=cross,
        ).to(args.device).eval()  # fmt: skip
        context = torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1
        actions = spec.sample((1, steps)).to(args.device)
        model.rollout(context, actions[:, :2])  # warm-up
        passes = _count_passes(model)
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


def gpu_speed(args: argparse.Namespace) -> list[dict]:
    """GPU rollout frames/s in bf16 at batch 1: eager vs CUDA graphs (``cuda_graphs=True``),
    raster vs diagonal (within a frame / across frames), at 24x14 and 16x16 tokens per frame,
    with a MineWorld-sized vocabulary (8,000 ids). Each graphed setting is also checked against
    its eager static-cache twin under greedy sampling (same tokens, same frames)."""
    rows = []
    spec = ActionSpec.discrete(5)
    dtype = torch.bfloat16
    grids = {"24x14": (56, 96), "16x16": (64, 64)}
    diag = f"diagonal (w={args.window})"
    settings = (  # label, decoding, cross_frame, cuda_graphs, compile_decoding, timed steps
        ("raster, no KV cache", "raster", False, False, False, 1),
        ("raster", "raster", False, False, False, 1),
        ("raster", "raster", False, True, False, 4),
        ("raster", "raster", False, True, True, 4),
        (diag, "diagonal", False, False, False, 2),
        (diag, "diagonal", False, True, False, 8),
        (diag, "diagonal", False, True, True, 8),
        (f"{diag}, across frames", "diagonal", True, True, False, 8),
        (f"{diag}, across frames", "diagonal", True, True, True, 8),
    )
    runs = [(g, *setting) for g in args.grids for setting in settings]
    for grid_name, label, decoding, cross, graphs, compiled, steps in runs:
        h, w = grids[grid_name]
        torch.manual_seed(0)
        model = ARWorldModel(
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(h, w), size=args.size,
            max_frames=args.max_frames, decoding=decoding, window=args.window,
            temperature=1.0, cross_frame=cross, cuda_graphs=graphs,
            compile_decoding=compiled, use_cache="no KV cache" not in label,
        ).to(args.device, dtype).eval()  # fmt: skip
        context = (torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1).to(dtype)
        actions = spec.sample((1, steps)).to(args.device)
        fps = _rollout_fps(model, context, actions, actions, args)  # warm-up captures graphs
        row = {
            "grid": grid_name, "tokens_per_frame": model.tokens_per_frame,
            "decoding": label, "cuda_graphs": graphs, "compiled": compiled, "dtype": "bf16",
            "fps_median": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
            "steps": steps, "max_frames": args.max_frames,
            "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        }  # fmt: skip
        if graphs:  # graphs vs the same static path run eagerly, greedy
            model.sampler = type(model.sampler)(temperature=0.0)
            with _logits_recorded(model) as graphed:
                a = model.rollout(context, actions[:, :2]).frames
            row["graphs_captured"] = model._decoder.captured if model._decoder else []
            model._decoder.use_graphs = False
            with _logits_recorded(model) as eager:
                b = model.rollout(context, actions[:, :2]).frames
            row["graphed_equals_eager"] = bool(torch.equal(a, b))
            row.update(_greedy_divergence(graphed, eager))
        print(json.dumps(row), flush=True)
        rows.append(row)
        del model
        torch.cuda.empty_cache()
    return rows


@contextlib.contextmanager
def _logits_recorded(model: ARWorldModel):
    """Collects every frame-logit tensor ``model.frame_head`` returns (``[B, S, V]``, float32
    on the host), in call order."""
    logits: list[torch.Tensor] = []
    handle = model.frame_head.register_forward_hook(
        lambda _m, _i, out: logits.append(out.detach().float().cpu())
    )
    try:
        yield logits
    finally:
        handle.remove()


def _greedy_divergence(first: list[torch.Tensor], second: list[torch.Tensor]) -> dict:
    """Where two greedy decodings of the same inputs first pick different tokens, and whether
    that is a near tie: the largest logit difference up to that pass against the winning
    margin (top-1 minus top-2 of ``second``) at the row that flipped. Until the first flip both
    decodings fed the same tokens, so their logits are comparable pass for pass."""
    diff = 0.0
    for i, (x, y) in enumerate(zip(first, second, strict=False)):
        if x.shape != y.shape:
            return {"first_flip_pass": i, "max_logit_diff": diff, "flip_margin": None}
        if not x.numel():
            continue  # a pass that predicts no frame token
        diff = max(diff, float((x - y).abs().max()))
        flipped = (x.argmax(-1) != y.argmax(-1)).flatten().nonzero()
        if len(flipped):
            row = y.reshape(-1, y.shape[-1])[int(flipped[0])]
            top = row.topk(2).values
            return {
                "first_flip_pass": i,
                "max_logit_diff": diff,
                "flip_margin": float(top[0] - top[1]),
            }
    return {"first_flip_pass": None, "max_logit_diff": diff, "flip_margin": None}


def gpu_profile(args: argparse.Namespace) -> list[dict]:
    """Where one frame's decoding time goes on the GPU, for the real-time settings (CUDA graphs,
    eager and compiled blocks; 24x14 tokens, bf16, batch 1): wall time per tick, kernels per
    tick and their summed device time (device time well below wall time means the host, not
    the GPU, sets the pace), and the kernels that take the most device time. One ``step``
    under ``torch.profiler`` after a warm-up rollout that captures the graphs."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    rows = []
    spec = ActionSpec.discrete(5)
    dtype = torch.bfloat16
    h, w = 56, 96
    diag = f"diagonal (w={args.window})"
    for label, decoding, compiled in (
        ("raster", "raster", False), ("raster", "raster", True),
        (diag, "diagonal", False), (diag, "diagonal", True),
    ):  # fmt: skip
        torch.manual_seed(0)
        model = ARWorldModel(
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(h, w), size=args.size,
            max_frames=args.max_frames, decoding=decoding, window=args.window,
            temperature=1.0, cuda_graphs=True, compile_decoding=compiled,
        ).to(args.device, dtype).eval()  # fmt: skip
        context = (torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1).to(dtype)
        actions = spec.sample((1, 2)).to(args.device)
        model.rollout(context, actions)  # compiles and captures every pass size
        state = model.reset(context)
        passes = _count_passes(model)
        _sync(args.device)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model.step(state, actions[:, 0])
            _sync(args.device)
        wall = time.perf_counter() - t0
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        by_name: dict[str, list[float]] = {}
        for e in kernels:
            by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
        top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:8]
        ticks = len(passes)
        row = {
            "decoding": label, "compiled": compiled, "ticks": ticks,
            "wall_ms_per_tick": wall * 1e3 / ticks,
            "kernels_per_tick": len(kernels) / ticks,
            "device_ms_per_tick": sum(e.time_range.elapsed_us() for e in kernels) / 1e3 / ticks,
            "top_kernels": [
                {"name": n[:80], "count": len(v), "total_us": sum(v)} for n, v in top
            ],
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
        del model
        torch.cuda.empty_cache()
    return rows


def gpu_train(args: argparse.Namespace) -> list[dict]:
    """Training throughput (tokens/s) and MFU in bf16 autocast on one GPU: next-token loss
    over 8-frame clips of 24x14 tokens (an 8,000-id vocabulary), eager and with every block
    ``torch.compile``d. FLOPs are counted by ``FlopCounterMode`` (matmuls and attention,
    forward and backward); MFU is against the GPU's dense bf16 peak
    (``wmkit.eval.throughput.peak_flops``)."""
    import torch.nn.functional as F

    from wmkit.eval.throughput import count_flops, measure

    rows = []
    spec = ActionSpec.discrete(5)
    frames, batch = 8, args.train_batch
    for compiled in (False, True):
        torch.manual_seed(0)
        model = ARWorldModel(
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(56, 96), size=args.size,
            max_frames=frames,
        ).to(args.device).train()  # fmt: skip
        if compiled:
            for block in model.transformer.blocks:
                block.compile()
        lay = model.layout
        tokens = torch.randint(0, lay.vocab_size, (batch, frames, lay.h, lay.w), device=args.device)
        actions = spec.sample((batch, frames)).to(args.device)
        targets = tokens[:, 1:].reshape(-1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

        def step(model=model, tokens=tokens, actions=actions, targets=targets, opt=opt):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(tokens, actions)
            logits = out.frame_logits.float().reshape(-1, out.frame_logits.shape[-1])
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        seq = lay.step_start(frames)
        flops = count_flops(step) if not compiled else rows[0]["flops_per_step"]
        r = measure(step, name=f"{args.size} train {'compiled' if compiled else 'eager'}",
                    items=batch * seq, unit="tokens", device=args.device, warmup=3,
                    repeats=args.repeats * 3, flops=flops)  # fmt: skip
        row = {
            "compiled": compiled, "batch": batch, "seq_len": seq, "tokens_per_s": r.items_per_s,
            "step_ms": r.median_s * 1e3, "tflops": flops / r.median_s / 1e12, "mfu": r.mfu,
            "flops_per_step": flops, "peak_mem_mb": r.peak_memory_mb,
            "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
        del model, opt
        torch.cuda.empty_cache()
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


# --------------------------------------------------------------------------- Crafter quality
def load_crafter36(args: argparse.Namespace) -> tuple[list, ActionSpec]:
    """Crafter recorded at 36x36 (``wmkit record crafter``, ``explore`` policy, 120 steps;
    recorded here when ``args.data`` has no dataset): ``[(video [1, T, 3, 36, 36], actions
    long [1, T], rewards [1, T])]`` per episode."""
    from wmkit.core.data.episode_store import EpisodeStore

    path = Path(args.data)
    if not (path / "manifest.json").is_file():
        from wmkit.core.data.record import record

        print(f"recording {args.episodes} Crafter episodes at 36x36 into {path} ...", flush=True)
        record("crafter", path, args.episodes, resolution=36, max_steps=120, policy="explore")
    store = EpisodeStore(path)
    if len(store) < args.episodes:
        raise SystemExit(f"{path} holds {len(store)} episodes; --episodes is {args.episodes}")
    out = []
    for ep in range(args.episodes):
        frames, steps = store.read_episode(ep)
        if frames.shape[1:3] != (36, 36):
            raise SystemExit(f"{path} is recorded at {frames.shape[1:3]}; this part needs 36x36")
        out.append((
            to_float_video(frames),
            torch.as_tensor(np.asarray(steps["actions"])).long()[None],
            torch.as_tensor(np.asarray(steps["rewards"])).float()[None],
        ))  # fmt: skip
    return out, store.action_spec


def _train_on_tokens(model, tokens: list, episodes: list, args: argparse.Namespace) -> int:
    """AdamW on random ``args.clip``-frame clips of precomputed tokens for ``args.budget_s``
    seconds of wall clock (50-step warm-up, cosine decay over the budget); returns steps."""
    module = ARWorldModelModule(model, action_dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = np.random.default_rng(0)
    t0, steps = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < args.budget_s:
        for group in opt.param_groups:
            warm = min(1.0, (steps + 1) / 50)
            group["lr"] = args.lr * warm * 0.5 * (1 + np.cos(np.pi * elapsed / args.budget_s))
        picks = []
        for _ in range(args.batch):
            j = int(gen.integers(len(tokens)))
            s = int(gen.integers(tokens[j].shape[1] - args.clip + 1))
            picks.append((j, slice(s, s + args.clip)))
        batch = {
            "tokens": torch.cat([tokens[j][:, sl] for j, sl in picks]),
            "actions": torch.cat([episodes[j][1][:, sl] for j, sl in picks]),
            "rewards": torch.cat([episodes[j][2][:, sl] for j, sl in picks]),
        }
        losses = module.losses(batch, train=True)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        steps += 1
        if steps % 100 == 0:
            print(f"  step {steps} ({elapsed:.0f} s): token CE "
                  f"{losses['token_ce'].item():.3f}, accuracy {losses['token_acc'].item():.3f}",
                  flush=True)  # fmt: skip
    return steps


def _clip_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict:
    """PSNR of the mean MSE and mean SSIM of ``pred`` vs ``true`` ``[N, T, C, H, W]``, next
    frame and all ``T`` steps, plus the per-step PSNR curve."""
    from wmkit.eval.frame_metrics import frame_mse, frame_ssim, psnr_from_mse

    mse, ssim_ = frame_mse(pred, true), frame_ssim(pred, true)  # [N, T]
    return {
        "psnr_1": float(psnr_from_mse(mse[:, 0].mean())), "ssim_1": float(ssim_[:, 0].mean()),
        "psnr_8": float(psnr_from_mse(mse.mean())), "ssim_8": float(ssim_.mean()),
        "psnr_per_step": [float(psnr_from_mse(m)) for m in mse.mean(0)],
    }  # fmt: skip


def crafter_quality(args: argparse.Namespace) -> dict:
    """Quality on held-out *recorded* Crafter episodes after a fixed wall-clock budget.

    Tokenizer: ``PatchVQTokenizer`` (wmkit-tokenizers; k-means over 4x4 pixel patches, one
    token per Crafter tile at 36x36, 81 tokens per frame) fitted on 16 training episodes.
    World model: ``ARWorldModel`` trained on every training episode's precomputed tokens. Every
    ``args.stride`` frames of each held-out episode starts a clip: 2 context frames, then a
    greedy ``args.horizon``-step rollout on the recorded actions, raster and diagonal. The
    baseline repeats the last context frame. Controllability: PSNR with the true actions
    minus PSNR with the actions of another clip (shuffled across clips)."""
    from wmkit.tokenizers import PatchVQTokenizer

    episodes, spec = load_crafter36(args)
    train, held = episodes[: -args.held_out], episodes[-args.held_out :]
    torch.manual_seed(0)
    tok = PatchVQTokenizer(patch=4, codebook_size=args.codes)
    t0 = time.perf_counter()
    tok.fit(torch.cat([v for v, _, _ in train[:16]], dim=1), iterations=15)
    fit_s = time.perf_counter() - t0
    tokens = [tok.encode(v).values for v, _, _ in train]
    held_video = torch.cat([v for v, _, _ in held], dim=1)
    held_ids = tok.encode(held_video).values
    recon = tok.decode(held_ids).clamp(-1, 1)
    from wmkit.eval.frame_metrics import frame_mse, psnr_from_mse

    tok_row = {
        "codes": args.codes, "fit_seconds": fit_s,
        "recon_psnr": float(psnr_from_mse(frame_mse(recon, held_video).mean())),
        "copy_token_agreement": float((held_ids[:, 1:] == held_ids[:, :-1]).float().mean()),
    }  # fmt: skip
    model = ARWorldModel(
        spec, tok, frame_size=(36, 36), size=args.size, max_frames=args.clip,
        temperature=0.0, window=9,
    )  # fmt: skip
    print(f"training ar-world {args.size} ({sum(p.numel() for p in model.parameters()):,} "
          f"params) for {args.budget_s:.0f} s ...", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    steps = _train_on_tokens(model, tokens, train, args)
    train_s = time.perf_counter() - t0
    model.eval()
    k, horizon = 2, args.horizon
    ctx, ctx_a, acts, true = [], [], [], []
    for video, actions, _ in held:
        for s in range(0, video.shape[1] - k - horizon + 1, args.stride):
            ctx.append(video[:, s : s + k])
            ctx_a.append(actions[:, s : s + k - 1])
            acts.append(actions[:, s + k - 1 : s + k - 1 + horizon])  # action t-1 → frame t
            true.append(video[:, s + k : s + k + horizon])
    ctx, ctx_a, acts, true = (torch.cat(x) for x in (ctx, ctx_a, acts, true))
    shuffled = acts.roll(1, dims=0)
    copy_last = ctx[:, -1:].expand_as(true)
    out: dict = {
        "tokenizer": tok_row, "train_steps": steps, "train_seconds": train_s,
        "clips": len(ctx), "horizon": horizon, "size": args.size,
        "params": sum(p.numel() for p in model.parameters()),
        "copy_last": _clip_metrics(copy_last, true),
    }  # fmt: skip
    shown = {"real": true, "copy last": copy_last}
    for decoding in ("raster", "diagonal"):
        model.decoding = decoding
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = model.rollout(ctx, acts, context_actions=ctx_a).frames
            pred_shuf = model.rollout(ctx, shuffled, context_actions=ctx_a).frames
        row = _clip_metrics(pred, true)
        row["controllability_db"] = row["psnr_8"] - _clip_metrics(pred_shuf, true)["psnr_8"]
        row["rollout_seconds"] = time.perf_counter() - t0
        out[decoding] = row
        shown[decoding] = pred
    _crafter_media(args, out, shown)
    # diagonal decoding's lag between rows: each row waits for more of the row above (the
    # tokens above-right that raster order would show), at the cost of more passes per frame
    out["offsets"] = {}
    model.decoding = "diagonal"
    for offset in sorted(set(args.offsets) - {1}):
        model.offset = offset
        with torch.no_grad():
            row = _clip_metrics(model.rollout(ctx, acts, context_actions=ctx_a).frames, true)
        row["passes_per_frame"] = (model.layout.h - 1) * offset + model.layout.w
        out["offsets"][offset] = row
    model.offset = 1
    return out


def _crafter_media(args: argparse.Namespace, out: dict, shown: dict) -> None:
    """A GIF of four held-out clips (columns: real, copy last, raster, diagonal; 4x nearest
    upsampling) and a plot of PSNR per rollout step, next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wmkit.core import frame_grid
    from wmkit.core.video_io import write_gif

    stem = Path(args.out).with_suffix("")
    n = shown["real"].shape[0]
    rows = []
    for i in range(0, n, max(1, n // 4))[:4]:
        big = [torch.nn.functional.interpolate(v[i], scale_factor=4, mode="nearest")[None]
               for v in shown.values()]  # fmt: skip
        rows.append(frame_grid(big, pad=4))
    gif = write_gif(f"{stem}_rollouts.gif", torch.cat(rows, dim=1), fps=2)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = range(1, out["horizon"] + 1)
    for name in ("raster", "diagonal", "copy_last"):
        ax.plot(steps, out[name]["psnr_per_step"], marker="o", label=name.replace("_", " "))
    ax.set_xlabel("rollout step")
    ax.set_ylabel("PSNR of the mean MSE (dB)")
    ax.set_title(f"held-out Crafter 36x36, {out['clips']} clips")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{stem}_psnr.png", dpi=120)
    plt.close(fig)
    out["media"] = [str(gif), f"{stem}_psnr.png"]


def _print_crafter(args: argparse.Namespace, hardware: str, q: dict) -> None:
    t = q["tokenizer"]
    print(
        f"\n## quality — held-out recorded Crafter 36x36 ({args.held_out} episodes, "
        f"{q['clips']} clips), ar-world {q['size']} ({q['params']:,} params), "
        f"{q['train_steps']} steps in {q['train_seconds']:.0f} s, {hardware}\n"
    )
    print(f"PatchVQTokenizer, {t['codes']} codes (k-means {t['fit_seconds']:.0f} s): held-out "
          f"reconstruction {t['recon_psnr']:.2f} dB; ids equal to the previous frame's: "
          f"{t['copy_token_agreement']:.3f}\n")  # fmt: skip
    print("| model | PSNR next | SSIM next | PSNR 8-step | SSIM 8-step | controllability (dB) |")
    print("|---|---|---|---|---|---|")
    for name in ("raster", "diagonal", "copy_last"):
        r = q[name]
        ctrl = f"{r['controllability_db']:+.2f}" if "controllability_db" in r else "—"
        label = {"raster": "ar-world raster", "diagonal": "ar-world diagonal (w=9)",
                 "copy_last": "copy last frame"}[name]  # fmt: skip
        print(f"| {label} | {r['psnr_1']:.2f} | {r['ssim_1']:.3f} | {r['psnr_8']:.2f} | "
              f"{r['ssim_8']:.3f} | {ctrl} |")  # fmt: skip
    if q.get("offsets"):
        print("\ndiagonal decoding (w=9) against its row offset (offset 1 above):\n")
        print("| offset | passes/frame | PSNR next | SSIM next | PSNR 8-step | SSIM 8-step |")
        print("|---|---|---|---|---|---|")
        for offset, r in q["offsets"].items():
            print(f"| {offset} | {r['passes_per_frame']} | {r['psnr_1']:.2f} | {r['ssim_1']:.3f} "
                  f"| {r['psnr_8']:.2f} | {r['ssim_8']:.3f} |")  # fmt: skip
    print(f"\nmedia: {', '.join(q.get('media', []))}")


def main() -> None:
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
    if part == "gpu" and not args.device.startswith("cuda"):
        p.error("--part gpu needs --device cuda")
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
    if craft is not None:
        _print_crafter(args, hardware, craft)
    if gpu_rows:
        _print_gpu(args, hardware, gpu_rows, train_rows)
    if prof_rows:
        _print_profile(args, hardware, prof_rows)
    print(f"\nraw numbers: {out}")


def _print_profile(args: argparse.Namespace, hardware: str, rows: list[dict]) -> None:
    print(f"\n## ar-world {args.size} decoding ticks under the profiler, CUDA graphs, bf16, "
          f"batch 1, 24x14 tokens, {hardware}\n")  # fmt: skip
    print("| decoding | compiled | ticks/frame | wall ms/tick | kernels/tick | device ms/tick |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoding']} | {'yes' if r['compiled'] else 'no'} | {r['ticks']} | "
              f"{r['wall_ms_per_tick']:.3f} | {r['kernels_per_tick']:.0f} | "
              f"{r['device_ms_per_tick']:.3f} |")  # fmt: skip
    for r in rows:
        print(f"\ntop kernels, {r['decoding']}{', compiled' if r['compiled'] else ''}:")
        for k in r["top_kernels"]:
            print(f"- {k['name']}: {k['count']} launches, {k['total_us'] / 1e3:.2f} ms")


def _print_gpu(
    args: argparse.Namespace, hardware: str, rows: list[dict], train: list[dict]
) -> None:
    print(f"\n## ar-world {args.size} ({rows[0]['params_m']:.0f}M params) rollout, bf16, "
          f"batch 1, {hardware}, {args.max_frames}-frame window\n")  # fmt: skip
    print("| tokens/frame | decoding | CUDA graphs | compiled | frames/s (median) | min–max "
          "| graphs = eager (max Δlogit; margin at first flip) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        same = {True: "yes", False: "NO"}.get(r.get("graphed_equals_eager"), "–")
        if "max_logit_diff" in r:
            margin = r["flip_margin"]
            same += f" ({r['max_logit_diff']:.2g}" + (
                f"; {margin:.2g} at pass {r['first_flip_pass']})" if margin is not None else ")"
            )
        print(f"| {r['grid']} ({r['tokens_per_frame']}) | {r['decoding']} | "
              f"{'yes' if r['cuda_graphs'] else 'no'} | {'yes' if r['compiled'] else 'no'} | "
              f"{r['fps_median']:.1f} | "
              f"{r['fps_min']:.1f}–{r['fps_max']:.1f} | {same} |")  # fmt: skip
    if not train:
        return
    print(f"\n## ar-world {args.size} training, bf16 autocast, {hardware}\n")
    print("| blocks | batch x tokens | tokens/s | step (ms) | TFLOP/s | MFU | peak mem (MB) |")
    print("|---|---|---|---|---|---|---|")
    for r in train:
        mfu = "–" if r["mfu"] is None else f"{r['mfu'] * 100:.1f}%"
        print(f"| {'torch.compile' if r['compiled'] else 'eager'} | {r['batch']} x "
              f"{r['seq_len']} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.1f} | "
              f"{r['tflops']:.0f} | {mfu} | {r['peak_mem_mb']:.0f} |")  # fmt: skip


def _print_speed(args: argparse.Namespace, hardware: str, speed_rows: list[dict]) -> None:
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
