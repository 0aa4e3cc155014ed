"""Benchmark wmkit-diffusion-world: rollout speed, quality vs copy-last, guidance, long horizon.

1. speed: rollout frames/s of the tiny causal DiT and the tiny causalized SVD UNet vs the
   number of denoising steps (median and spread over ``--repeats`` after a warm-up);
2. quality: a DiT trained for a fixed wall-clock budget on recorded Crafter episodes
   (``wmkit record crafter``, resized to ``--resolution``), evaluated on held-out episodes:
   next-frame and 8-step PSNR/SSIM against copying the last context frame. Headline PSNR is
   the PSNR of the mean MSE (``wmkit.eval.frame_metrics.psnr_from_mse``, torchmetrics'
   reduction); the mean of per-frame PSNRs (capped at 100 dB, which copy-last-frame hits on
   every unchanged frame) is reported beside it;
3. controllability vs causal action guidance scale (plot): how much the generated frame
   changes when the current action is replaced by another one;
4. a 100-frame rollout with a sliding window: PSNR of the mean MSE against the real frames
   per step (plot);
5. ``--history-cache`` (alone): rollout speed with and without the history cache, of the
   DiT or (``--cache-network unet3d|svd_unet|wan``) a causalized diffusers network.

    uv run --no-sync python tools/bench_diffusion_world.py --quick --data /tmp/s2/crafter32
    # on the latents of the quickstart's per-frame tokenizer (trained 150 s first)
    uv run --no-sync python tools/bench_diffusion_world.py --quick --skip-speed --latent 150 \
        --network-kwargs '{"patch_size": 2, "hidden_size": 96, "depth": 2, "num_heads": 4}'

Prints Markdown tables; writes raw numbers to ``results/bench_diffusion_world.json`` and the
plots next to it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusion_world_bench.models import flat_world_model, model_kwargs
from diffusion_world_bench.quality import (
    controllability,
    frame_bank,
    load_crafter,
    long_horizon,
    quality,
    reconstruction_psnr,
    train,
    train_tokenizer,
)
from diffusion_world_bench.report import plots
from diffusion_world_bench.speed import (
    CACHE_NETWORKS,
    _print_cache_table,
    gpu_speed,
    history_cache_speed,
    speed,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data", default="data/crafter-32")
    p.add_argument("--episodes", type=int, default=48)
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--eval-stride", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clip", type=int, default=8)
    p.add_argument("--objective", default="edm", choices=["ddpm", "edm", "flow"])
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--prediction-type", default="v_prediction")
    p.add_argument("--sigma-data", type=float, default=0.1)
    p.add_argument("--sigma-max", type=float, default=5.0)
    p.add_argument("--sampling-steps", type=int, default=1)
    p.add_argument(
        "--network-kwargs",
        default='{"patch_size": 4, "hidden_size": 96, "depth": 2, "num_heads": 4}',
    )
    p.add_argument(
        "--latent", type=float, default=0.0, metavar="SECONDS",
        help="train the quickstart's per-frame KL tokenizer for SECONDS first, then the DiT on "
        "its latents (patch 2, anchored decoding); 0: on pixels",
    )  # fmt: skip
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument(
        "--history-cache", action="store_true",
        help="only: rollout speed with and without the history cache (no data needed)",
    )  # fmt: skip
    p.add_argument(
        "--cache-network", choices=tuple(CACHE_NETWORKS), default="dit",
        help="--history-cache: the network measured",
    )  # fmt: skip
    p.add_argument(
        "--gpu-speed", action="store_true",
        help="only the real-size (DiT-base, 64x64) bf16 rollout speed on --device cuda",
    )  # fmt: skip
    p.add_argument("--out", default="results/bench_diffusion_world.json")
    args = p.parse_args()
    if args.gpu_speed and not args.device.startswith("cuda"):
        p.error("--gpu-speed needs --device cuda")
    if args.quick:
        args.budget_s = min(args.budget_s, 420.0)
        args.eval_stride = max(args.eval_stride, 20)
    return args


def run_gpu_speed(args: argparse.Namespace, out: Path) -> None:
    """``--gpu-speed``: the real-size DiT's bf16 rollout speed."""
    rows = gpu_speed(args)
    name = torch.cuda.get_device_name(0)
    out.write_text(json.dumps({"hardware": name, "gpu_speed": rows}, indent=2))
    print(f"\n### Real-size rollout speed (DiT-base {rows[0]['params_m']:.0f}M, 64x64, "
          f"16-frame window, bf16 autocast, batch 1; {name})\n")  # fmt: skip
    _print_cache_table(rows, "CUDA graphs", "cuda_graphs", 1)


def run_history_cache(args: argparse.Namespace, out: Path) -> None:
    """``--history-cache``: rollout speed with and without the history cache."""
    rows = history_cache_speed(args)
    hw = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    out.write_text(json.dumps({"hardware": hw, "history_cache": rows}, indent=2))
    name = {"dit": "DiT", "unet3d": "causal UNet3D", "svd_unet": "causal SVD UNet",
            "wan": "causal Wan"}  # fmt: skip
    print(f"\n### History cache ({name[args.cache_network]} {rows[0]['params_m']:.1f}M, "
          f"32x32 pixels, 16-frame window, batch 1, {args.threads} thread(s); "
          f"{hw})\n")  # fmt: skip
    _print_cache_table(rows, "max abs diff (cache vs none)", "max_abs_diff_vs_none", 2)


def run_quality(args: argparse.Namespace, out: Path) -> dict:
    """Speed rows, then train on recorded Crafter and measure quality, controllability and
    the long rollout; returns the raw numbers (``print_results`` prints them)."""
    speed_rows = [] if args.skip_speed else speed(args)
    data, spec = load_crafter(Path(args.data), args.episodes, args.resolution)
    train_eps, held = data[: -args.held_out], data[-args.held_out :]
    latent = {}
    if args.latent > 0:
        from wmkit.diffusion_world import latent_change_scale

        t0 = time.perf_counter()
        tok, tok_iters = train_tokenizer(train_eps, args.latent, args.batch)
        scale = latent_change_scale(tok, (v for v, _ in train_eps[:16]))
        latent = {"tokenizer_steps": tok_iters, "tokenizer_s": time.perf_counter() - t0,
                  "latent_scale": scale, "recon_psnr": reconstruction_psnr(tok, held)}  # fmt: skip
    torch.manual_seed(0)
    if latent:
        model = flat_world_model(spec, channels=4, image_size=args.resolution // 2,
                                    latent_scale=latent["latent_scale"], anchored_decoding=True,
                                    **model_kwargs(args)).set_tokenizer(tok)  # fmt: skip
    else:
        model = flat_world_model(spec, image_size=args.resolution, **model_kwargs(args))
    model = model.to(args.device)
    params = sum(q.numel() for q in model.parameters())
    t0 = time.perf_counter()
    iters = train(model, train_eps, args.budget_s, args.clip, args.batch, args.lr)
    train_s = time.perf_counter() - t0
    qual = quality(args, model, held)
    ctrl = controllability(model, held, [0.0, 1.0, 2.0, 4.0])
    long = long_horizon(model, held, 100, frame_bank(train_eps))
    files = plots(out, ctrl, long, "diffusion_world_latent" if latent else "diffusion_world")

    result = {
        "args": vars(args),
        "speed": speed_rows,
        "params": params,
        "train_steps": iters,
        "train_s": train_s,
        "latent": latent,
        "quality": qual,
        "controllability": ctrl,
        "long_horizon": long,
        "plots": files,
        "held_out_episodes": len(held),
    }
    return result


def print_results(args: argparse.Namespace, r: dict) -> None:
    """The Markdown tables of :func:`run_quality`'s numbers."""
    speed_rows, qual, ctrl, long = r["speed"], r["quality"], r["controllability"], r["long_horizon"]
    params, iters, train_s, latent = r["params"], r["train_steps"], r["train_s"], r["latent"]
    hw = f"{args.device}, {args.threads} thread(s)"
    if speed_rows:
        print(f"\n### Rollout speed (32x32, guidance 1.5, DiT as below, SVD UNet tiny; {hw})\n")
        print("| network | denoising steps | frames/s (median) | min–max |\n|---|---|---|---|")
        for row in speed_rows:
            print(f"| {row['network']} | {row['steps']} | {row['fps_median']:.1f} | "
                  f"{row['fps_min']:.1f}–{row['fps_max']:.1f} |")  # fmt: skip
    setup = (f"{args.objective}, residual={args.residual}, sigma_data={args.sigma_data}, "
             f"DiT-{args.size} {args.network_kwargs} {params / 1e3:.0f}k params, {iters} steps "
             f"(batch {args.batch} x {args.clip} frames) in {train_s:.0f} s, lr {args.lr}, "
             f"{args.sampling_steps} sampling steps")  # fmt: skip
    if latent:
        setup += (f"; on the latents of a per-frame KL tokenizer (2x down, 4 channels) trained "
                  f"{latent['tokenizer_steps']} steps in {latent['tokenizer_s']:.0f} s, held-out "
                  f"reconstruction {latent['recon_psnr']:.2f} dB, latent_scale "
                  f"{latent['latent_scale']}, anchored decoding")  # fmt: skip
    print(f"\n### Quality on {r['held_out_episodes']} held-out Crafter episodes ({args.resolution}x"
          f"{args.resolution}, {qual['clips']} clips; {setup})\n")  # fmt: skip
    print("PSNR: of the mean MSE (headline) / mean of per-frame PSNRs (100 dB cap)\n")
    print("| metric | model | copy last frame | beats copy-last |\n|---|---|---|---|")
    for name, key in (("next-frame", "next"), ("8-step", "h8")):
        m, c = (qual[f"{key}_psnr{x}"] for x in ("", "_copy"))
        fm, fc = (qual[f"{key}_psnr_frame_mean{x}"] for x in ("", "_copy"))
        print(f"| {name} PSNR (dB) | {m:.2f} / {fm:.2f} | {c:.2f} / {fc:.2f} | "
              f"{'yes' if m > c else 'no'} / {'yes' if fm > fc else 'no'} |")  # fmt: skip
        m, c = qual[f"{key}_ssim"], qual[f"{key}_ssim_copy"]
        print(f"| {name} SSIM | {m:.3f} | {c:.3f} | {'yes' if m > c else 'no'} |")
    print("\n### Controllability vs guidance scale\n")
    print("| guidance scale | mean abs frame change when the action is swapped |\n|---|---|")
    for row in ctrl:
        print(f"| {row['guidance_scale']:g} | {row['action_effect_l1']:.4f} |")
    print(f"\n### 100-frame rollout, PSNR of the mean MSE (dB), {long['episodes']} episodes, "
          "sliding window of 8\n")  # fmt: skip
    print("| step | model | copy last context frame | model: to nearest training frame | "
          "real frames: to nearest training frame |\n|---|---|---|---|---|")  # fmt: skip
    for t in (1, 2, 4, 8, 16, 25, 50, 75, 100):
        print(f"| {t} | {long['psnr'][t - 1]:.2f} | {long['psnr_copy'][t - 1]:.2f} | "
              f"{long['nn_psnr'][t - 1]:.2f} | {long['nn_psnr_real'][t - 1]:.2f} |")  # fmt: skip


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.gpu_speed:
        run_gpu_speed(args, out)
    elif args.history_cache:
        run_history_cache(args, out)
    else:
        result = run_quality(args, out)
        print_results(args, result)
        out.write_text(json.dumps(result, indent=2))
        print(f"\nraw numbers: {out}; plots: {', '.join(result['plots'])}")


if __name__ == "__main__":
    main()
