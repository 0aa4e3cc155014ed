"""GPU sections: bf16 rollout frames/s (eager, CUDA graphs, compiled blocks) checked against eager
decoding, one frame's ticks under the profiler, and training throughput and MFU."""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from ar_world_bench.timing import count_passes, rollout_fps, sync
from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.decoders import make_decoder
from wmkit.ar_world.sizes import transformer_spec
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyTokenizer


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
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(h, w),
            transformer=transformer_spec(args.size), max_frames=args.max_frames,
            decoder=make_decoder(
                decoding, args.window, cross_frame=cross, temperature=1.0, cuda_graphs=graphs,
                compile_decoding=compiled, use_cache="no KV cache" not in label,
            ),
        ).to(args.device, dtype).eval()  # fmt: skip
        context = (torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1).to(dtype)
        actions = spec.sample((1, steps)).to(args.device)
        fps = rollout_fps(model, context, actions, actions, args)  # warm-up captures graphs
        row = {
            "grid": grid_name, "tokens_per_frame": model.tokens_per_frame,
            "decoding": label, "cuda_graphs": graphs, "compiled": compiled, "dtype": "bf16",
            "fps_median": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
            "steps": steps, "max_frames": args.max_frames,
            "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        }  # fmt: skip
        if graphs:  # graphs vs the same static path run eagerly, greedy
            model.decoder.sampler = type(model.sampler)(temperature=0.0)
            with _logits_recorded(model) as graphed:
                a = model.rollout(context, actions[:, :2]).frames
            graphs = model.decoder.graphed
            row["graphs_captured"] = graphs.captured if graphs else []
            graphs.use_graphs = False
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
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(h, w),
            transformer=transformer_spec(args.size), max_frames=args.max_frames,
            decoder=make_decoder(decoding, args.window, temperature=1.0, cuda_graphs=True,
                                 compile_decoding=compiled),
        ).to(args.device, dtype).eval()  # fmt: skip
        context = (torch.rand(1, 2, 3, h, w, device=args.device) * 2 - 1).to(dtype)
        actions = spec.sample((1, 2)).to(args.device)
        model.rollout(context, actions)  # compiles and captures every pass size
        state = model.reset(context)
        passes = count_passes(model)
        sync(args.device)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model.step(state, actions[:, 0])
            sync(args.device)
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
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(56, 96),
            transformer=transformer_spec(args.size), max_frames=frames,
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


def print_gpu(args: argparse.Namespace, hardware: str, rows: list[dict], train: list[dict]) -> None:
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


def print_profile(args: argparse.Namespace, hardware: str, rows: list[dict]) -> None:
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
