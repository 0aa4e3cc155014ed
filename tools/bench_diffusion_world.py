"""Benchmark wmkit-diffusion-world: rollout speed, quality vs copy-last, guidance, long horizon.

1. speed: rollout frames/s of the tiny causal DiT and the tiny causalized SVD UNet vs the
   number of denoising steps (median and spread over ``--repeats`` after a warm-up);
2. quality: a tiny DiT trained for a fixed wall-clock budget on recorded Crafter episodes
   (``wmkit record crafter``, resized to ``--resolution``), evaluated on held-out episodes:
   next-frame and 8-step PSNR/SSIM against copying the last context frame;
3. controllability vs causal action guidance scale (plot): how much the generated frame
   changes when the current action is replaced by another one;
4. a 100-frame rollout with a sliding window: PSNR against the real frames per step (plot).

    uv run --no-sync python tools/bench_diffusion_world.py --quick

Prints Markdown tables; writes raw numbers to ``results/bench_diffusion_world.json`` and the
plots next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmkit.core import ActionSpec, resize_video, to_float_video
from wmkit.diffusion_world import DiffusionWorldModel


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 7, sigma 1.5) of videos in [-1, 1], [B, T, C, H, W]."""
    x = (a.flatten(0, 1).float() + 1) / 2
    y = (b.flatten(0, 1).float() + 1) / 2
    c = x.shape[1]
    g = torch.exp(-((torch.arange(7) - 3.0) ** 2) / (2 * 1.5**2))
    w = (g[:, None] * g[None]) / g.sum() ** 2
    w = w.expand(c, 1, 7, 7)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().clamp_min(1e-10)
    return (10 * torch.log10(4.0 / mse)).item()


def load_crafter(path: Path, episodes: int, resolution: int) -> tuple[list, ActionSpec]:
    from wmkit.core.data.episode_store import EpisodeStore

    if not (path / "manifest.json").is_file():
        from wmkit.core.data.record import record

        record("crafter", path, episodes, resolution=64, max_steps=200, frame_format="npz",
               progress=False)  # fmt: skip
    store = EpisodeStore(path)
    out = []
    for ep in range(len(store)):
        frames, steps = store.read_episode(ep)
        video = resize_video(to_float_video(frames), resolution)  # [1, T, C, r, r]
        out.append((video, torch.as_tensor(np.asarray(steps["actions"])).long()[None]))
    return out, store.action_spec


def speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    spec = ActionSpec.discrete(17)
    for network, size in (("dit", 32), ("svd_unet", 32)):
        for steps in (1, 2, 4, 8):
            torch.manual_seed(0)
            model = DiffusionWorldModel(
                spec, network=network, image_size=size, num_sampling_steps=steps,
                network_kwargs={"patch_size": 4} if network == "dit" else None,
                context_window=8, guidance_scale=1.5,
            ).eval().to(args.device)  # fmt: skip
            ctx = torch.zeros(1, 4, 3, size, size, device=args.device)
            n = 8
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


def train(model: DiffusionWorldModel, data: list, budget_s: float, clip: int, batch: int) -> int:
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = np.random.default_rng(0)
    model.train()
    t0, it = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget_s:
        vids, acts = [], []
        for _ in range(batch):
            video, actions = data[gen.integers(len(data))]
            s = int(gen.integers(video.shape[1] - clip))
            vids.append(video[:, s : s + clip])
            acts.append(actions[:, s : s + clip])
        loss = model.loss(torch.cat(vids), torch.cat(acts)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
    model.eval()
    return it


@torch.no_grad()
def quality(args: argparse.Namespace, model: DiffusionWorldModel, held_out: list) -> dict:
    k, horizon = 4, 8
    preds1, preds8, trues8, copies8 = [], [], [], []
    for video, actions in held_out:
        for s in range(0, video.shape[1] - k - horizon, args.eval_stride):
            ctx = video[:, s : s + k]
            torch.manual_seed(0)
            gen = model.rollout(ctx, actions[:, s + k - 1 : s + k - 1 + horizon],
                                context_actions=actions[:, s : s + k - 1]).frames  # fmt: skip
            preds8.append(gen)
            trues8.append(video[:, s + k : s + k + horizon])
            copies8.append(ctx[:, -1:].expand(-1, horizon, -1, -1, -1))
            preds1.append(gen[:, :1])
    p8, t8, c8, p1 = (torch.cat(x) for x in (preds8, trues8, copies8, preds1))
    return {
        "clips": int(p8.shape[0]),
        "next_psnr": psnr(p1, t8[:, :1]), "next_psnr_copy": psnr(c8[:, :1], t8[:, :1]),
        "next_ssim": ssim(p1, t8[:, :1]), "next_ssim_copy": ssim(c8[:, :1], t8[:, :1]),
        "h8_psnr": psnr(p8, t8), "h8_psnr_copy": psnr(c8, t8),
        "h8_ssim": ssim(p8, t8), "h8_ssim_copy": ssim(c8, t8),
    }  # fmt: skip


@torch.no_grad()
def controllability(model: DiffusionWorldModel, held_out: list, scales: list[float]) -> list[dict]:
    """Mean |frame(true action) - frame(other action)| for the next frame, same seed."""
    rows = []
    k = 4
    for scale in scales:
        model.sampler.guidance_scale = scale
        diffs = []
        for video, actions in held_out:
            for s in range(0, video.shape[1] - k - 1, 25):
                ctx, ca = video[:, s : s + k], actions[:, s : s + k - 1]
                a = actions[:, s + k - 1 : s + k]
                b = (a + 1 + torch.randint(0, 16, a.shape)) % 17
                torch.manual_seed(0)
                fa = model.rollout(ctx, a, context_actions=ca).frames
                torch.manual_seed(0)
                fb = model.rollout(ctx, b, context_actions=ca).frames
                diffs.append((fa - fb).abs().mean().item())
        rows.append({"guidance_scale": scale, "action_effect_l1": float(np.mean(diffs))})
    model.sampler.guidance_scale = 1.0
    return rows


@torch.no_grad()
def long_horizon(model: DiffusionWorldModel, held_out: list, horizon: int) -> dict:
    k = 4
    curves, copies = [], []
    for video, actions in held_out:
        if video.shape[1] < k + horizon:
            continue
        torch.manual_seed(0)
        gen = model.rollout(video[:, :k], actions[:, k - 1 : k - 1 + horizon],
                            context_actions=actions[:, : k - 1]).frames  # fmt: skip
        true = video[:, k : k + horizon]
        curves.append([psnr(gen[:, t], true[:, t]) for t in range(horizon)])
        copies.append([psnr(video[:, k - 1], true[:, t]) for t in range(horizon)])
    return {"psnr": np.mean(curves, 0).tolist(), "psnr_copy": np.mean(copies, 0).tolist()}


def plots(out: Path, ctrl: list[dict], long: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([r["guidance_scale"] for r in ctrl], [r["action_effect_l1"] for r in ctrl], "o-")
    ax.set(xlabel="causal action guidance scale", ylabel="mean |Δ frame| (swap action)")
    fig.tight_layout()
    files.append(str(out.with_name("diffusion_world_controllability.png")))
    fig.savefig(files[-1], dpi=120)
    fig, ax = plt.subplots(figsize=(5, 3))
    steps = np.arange(1, len(long["psnr"]) + 1)
    ax.plot(steps, long["psnr"], label="diffusion world model")
    ax.plot(steps, long["psnr_copy"], "--", label="copy last context frame")
    ax.set(xlabel="rollout step", ylabel="PSNR (dB)")
    ax.legend()
    fig.tight_layout()
    files.append(str(out.with_name("diffusion_world_long_horizon.png")))
    fig.savefig(files[-1], dpi=120)
    return files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data", default="data/crafter-64")
    p.add_argument("--episodes", type=int, default=12)
    p.add_argument("--held-out", type=int, default=2)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--eval-stride", type=int, default=20)
    p.add_argument("--out", default="results/bench_diffusion_world.json")
    args = p.parse_args()
    if args.quick:
        args.budget_s = min(args.budget_s, 150.0)
        args.eval_stride = max(args.eval_stride, 40)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    speed_rows = speed(args)
    data, spec = load_crafter(Path(args.data), args.episodes, args.resolution)
    train_eps, held = data[: -args.held_out], data[-args.held_out :]
    torch.manual_seed(0)
    model = DiffusionWorldModel(
        spec, size=args.size, image_size=args.resolution, network_kwargs={"patch_size": 4},
        num_sampling_steps=4, context_window=8, prediction_type="v_prediction",
    ).to(args.device)  # fmt: skip
    params = sum(q.numel() for q in model.parameters())
    iters = train(model, train_eps, args.budget_s, clip=8, batch=8)
    qual = quality(args, model, held)
    ctrl = controllability(model, held, [0.0, 1.0, 2.0, 4.0])
    long = long_horizon(model, held, 100)
    files = plots(out, ctrl, long)

    hw = f"{args.device}, {args.threads} thread(s)"
    print(f"\n### Rollout speed (tiny, 32x32, guidance 1.5, {hw})\n")
    print("| network | denoising steps | frames/s (median) | min–max |\n|---|---|---|---|")
    for r in speed_rows:
        print(f"| {r['network']} | {r['steps']} | {r['fps_median']:.1f} | "
              f"{r['fps_min']:.1f}–{r['fps_max']:.1f} |")  # fmt: skip
    print(f"\n### Quality on {len(held)} held-out Crafter episodes ({args.resolution}x"
          f"{args.resolution}, DiT-{args.size} {params / 1e3:.0f}k params, {iters} steps in "
          f"{args.budget_s:.0f} s, 4 DDIM steps, {qual['clips']} clips)\n")  # fmt: skip
    print("| metric | model | copy last frame |\n|---|---|---|")
    for name, key in (("next-frame PSNR (dB)", "next_psnr"), ("next-frame SSIM", "next_ssim"),
                      ("8-step PSNR (dB)", "h8_psnr"), ("8-step SSIM", "h8_ssim")):  # fmt: skip
        print(f"| {name} | {qual[key]:.3f} | {qual[key + '_copy']:.3f} |")
    print("\n### Controllability vs guidance scale\n")
    print("| guidance scale | mean abs frame change when the action is swapped |\n|---|---|")
    for r in ctrl:
        print(f"| {r['guidance_scale']:g} | {r['action_effect_l1']:.4f} |")
    print("\n### 100-frame rollout PSNR (dB), sliding window of 8\n")
    print("| step | model | copy last |\n|---|---|---|")
    for t in (1, 10, 25, 50, 100):
        print(f"| {t} | {long['psnr'][t - 1]:.2f} | {long['psnr_copy'][t - 1]:.2f} |")
    result = {
        "args": vars(args),
        "speed": speed_rows,
        "params": params,
        "train_steps": iters,
        "quality": qual,
        "controllability": ctrl,
        "long_horizon": long,
        "plots": files,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"\nraw numbers: {out}; plots: {', '.join(files)}")


if __name__ == "__main__":
    main()
