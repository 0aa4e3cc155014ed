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
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmkit.core import ActionSpec, resize_video, to_float_video
from wmkit.diffusion_world import DiffusionWorldModel
from wmkit.eval.frame_metrics import frame_mse, frame_psnr, frame_ssim, psnr_from_mse


def metrics(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Headline PSNR (of the mean MSE), mean per-frame PSNR (100 dB cap) and mean SSIM."""
    return {
        "psnr": float(psnr_from_mse(frame_mse(pred, true).mean())),
        "psnr_frame_mean": float(frame_psnr(pred, true).mean()),
        "ssim": float(frame_ssim(pred, true).mean()),
    }


def load_crafter(path: Path, episodes: int, resolution: int) -> tuple[list, ActionSpec]:
    from wmkit.core.data.episode_store import EpisodeStore

    if not (path / "manifest.json").is_file():
        from wmkit.core.data.record import record

        record("crafter", path, episodes, resolution=resolution, max_steps=120,
               policy="explore", progress=False)  # fmt: skip
    store = EpisodeStore(path)
    out = []
    for ep in range(min(len(store), episodes)):
        frames, steps = store.read_episode(ep)
        video = resize_video(to_float_video(frames), resolution)  # [1, T, C, r, r]
        out.append((video, torch.as_tensor(np.asarray(steps["actions"])).long()[None]))
    return out, store.action_spec


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
                    _sync(args.device)
                    t0 = time.perf_counter()
                    frames[cache, carry] = model.rollout(ctx, acts).frames
                    _sync(args.device)
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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


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


def train(
    model: DiffusionWorldModel, data: list, budget_s: float, clip: int, batch: int, lr: float
) -> int:
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = np.random.default_rng(0)
    model.train()
    t0, it = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for group in opt.param_groups:  # short warm-up, then cosine decay over the budget
            frac = elapsed / budget_s
            group["lr"] = lr * min(1.0, (it + 1) / 50) * 0.5 * (1 + np.cos(np.pi * frac))
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
    out: dict = {"clips": int(p8.shape[0])}
    for name, (model_pred, copy, true) in {
        "next": (p1, c8[:, :1], t8[:, :1]),
        "h8": (p8, c8, t8),
    }.items():
        for key, value in metrics(model_pred, true).items():
            out[f"{name}_{key}"] = value
        for key, value in metrics(copy, true).items():
            out[f"{name}_{key}_copy"] = value
    return out


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


def frame_bank(episodes: list, every: int = 2) -> torch.Tensor:
    """Training frames ``[N, C*H*W]`` (every ``every``-th) to measure distance to the data."""
    return torch.cat([video[0, ::every].flatten(1) for video, _ in episodes])


def nearest_mse(frames: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``frames [B, T, C, H, W]`` → MSE to the nearest bank frame in [0, 1] units ``[B, T]``."""
    flat = frames.flatten(2).flatten(0, 1)  # [(B T), D]
    d = torch.cdist(flat, bank).square().min(1).values / flat.shape[1] / 4
    return d.reshape(frames.shape[:2])


@torch.no_grad()
def long_horizon(
    model: DiffusionWorldModel, held_out: list, horizon: int, bank: torch.Tensor
) -> dict:
    """PSNR against the real frames per step, and how far the frames are from the data
    manifold: PSNR to the nearest training frame, for generated and for real frames."""
    k = 4
    curves, copies, near, near_real = [], [], [], []
    for video, actions in held_out:
        if video.shape[1] < k + horizon:
            continue
        torch.manual_seed(0)
        gen = model.rollout(video[:, :k], actions[:, k - 1 : k - 1 + horizon],
                            context_actions=actions[:, : k - 1]).frames  # fmt: skip
        true = video[:, k : k + horizon]
        curves.append(frame_mse(gen, true))
        copies.append(frame_mse(video[:, k - 1 : k].expand_as(true), true))
        near.append(nearest_mse(gen, bank))
        near_real.append(nearest_mse(true, bank))
    mse, mse_copy = torch.cat(curves).mean(0), torch.cat(copies).mean(0)  # [horizon]
    return {
        "episodes": len(curves),
        "psnr": psnr_from_mse(mse).tolist(),
        "psnr_copy": psnr_from_mse(mse_copy).tolist(),
        "nn_psnr": psnr_from_mse(torch.cat(near).mean(0)).tolist(),
        "nn_psnr_real": psnr_from_mse(torch.cat(near_real).mean(0)).tolist(),
    }


def plots(out: Path, ctrl: list[dict], long: dict, prefix: str = "diffusion_world") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([r["guidance_scale"] for r in ctrl], [r["action_effect_l1"] for r in ctrl], "o-")
    ax.set(xlabel="causal action guidance scale", ylabel="mean |Δ frame| (swap action)")
    fig.tight_layout()
    files.append(str(out.with_name(f"{prefix}_controllability.png")))
    fig.savefig(files[-1], dpi=120)
    fig, ax = plt.subplots(figsize=(5, 3))
    steps = np.arange(1, len(long["psnr"]) + 1)
    ax.plot(steps, long["psnr"], label="diffusion world model")
    ax.plot(steps, long["psnr_copy"], "--", label="copy last context frame")
    ax.plot(steps, long["nn_psnr"], ":", label="model to nearest training frame")
    ax.plot(steps, long["nn_psnr_real"], "-.", label="real to nearest training frame")
    ax.set(xlabel="rollout step", ylabel="PSNR of mean MSE (dB)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    files.append(str(out.with_name(f"{prefix}_long_horizon.png")))
    fig.savefig(files[-1], dpi=120)
    return files


def train_tokenizer(data: list, budget_s: float, batch: int, lr: float = 2e-3) -> tuple:
    """``--latent``: the quickstart's per-frame KL VidTok (2x down, 4 channels, width 16),
    trained with MSE on random 4-frame clips for ``budget_s`` seconds (warm-up, cosine)."""
    import torch.nn.functional as F

    from wmkit.tokenizers import VidTokTokenizer

    torch.manual_seed(0)
    tok = VidTokTokenizer("tiny", regularizer="kl", latent_channels=4, spatial_compression=2,
                          temporal_compression=1, temporal_mixing=False, channels=16,
                          multipliers=[1, 2])  # fmt: skip
    opt = torch.optim.AdamW(tok.parameters(), lr=lr)
    gen = np.random.default_rng(1)
    t0, it = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for group in opt.param_groups:
            warmup = min(1.0, (it + 1) / 50)
            group["lr"] = lr * warmup * 0.5 * (1 + np.cos(np.pi * elapsed / budget_s))
        clips = []
        for _ in range(batch):
            video, _ = data[gen.integers(len(data))]
            s = int(gen.integers(video.shape[1] - 4))
            clips.append(video[:, s : s + 4])
        x = torch.cat(clips)
        out = tok(x)
        loss = F.mse_loss(out.reconstruction, x) + 1e-6 * out.reg_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
    return tok.eval().requires_grad_(False), it


@torch.no_grad()
def reconstruction_psnr(tok: torch.nn.Module, held_out: list) -> float:
    mse = [frame_mse(tok.decode(tok.encode(v).values).clamp(-1, 1), v).mean() for v, _ in held_out]
    return float(psnr_from_mse(torch.stack(mse).mean()))


def flat_world_model(spec: ActionSpec, **flat: Any) -> DiffusionWorldModel:
    """A ``DiffusionWorldModel`` from the flat options this benchmark's flags name
    (``network="dit"``, ``objective="edm"``, ``num_sampling_steps``, ...), mapped onto its
    components by ``DiffusionWorldModel.upgrade_config``."""
    return DiffusionWorldModel(**DiffusionWorldModel.upgrade_config({"action_spec": spec, **flat}))


def model_kwargs(args: argparse.Namespace) -> dict:
    """The DiffusionWorldModel options under test (also used for the speed rows of the DiT)."""
    return {
        "size": args.size,
        "network_kwargs": json.loads(args.network_kwargs),
        "num_sampling_steps": args.sampling_steps,
        "context_window": 8,
        "objective": args.objective,
        "residual": args.residual,
        "sigma_data": args.sigma_data,
        "sigma_max": args.sigma_max,
        "prediction_type": args.prediction_type,
    }


def main() -> None:
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
    if args.quick:
        args.budget_s = min(args.budget_s, 420.0)
        args.eval_stride = max(args.eval_stride, 20)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.gpu_speed:
        if not args.device.startswith("cuda"):
            p.error("--gpu-speed needs --device cuda")
        rows = gpu_speed(args)
        name = torch.cuda.get_device_name(0)
        out.write_text(json.dumps({"hardware": name, "gpu_speed": rows}, indent=2))
        print(f"\n### Real-size rollout speed (DiT-base {rows[0]['params_m']:.0f}M, 64x64, "
              f"16-frame window, bf16 autocast, batch 1; {name})\n")  # fmt: skip
        _print_cache_table(rows, "CUDA graphs", "cuda_graphs", 1)
        return
    if args.history_cache:
        rows = history_cache_speed(args)
        hw = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
        out.write_text(json.dumps({"hardware": hw, "history_cache": rows}, indent=2))
        name = {"dit": "DiT", "unet3d": "causal UNet3D", "svd_unet": "causal SVD UNet",
                "wan": "causal Wan"}  # fmt: skip
        print(f"\n### History cache ({name[args.cache_network]} {rows[0]['params_m']:.1f}M, "
              f"32x32 pixels, 16-frame window, batch 1, {args.threads} thread(s); "
              f"{hw})\n")  # fmt: skip
        _print_cache_table(rows, "max abs diff (cache vs none)", "max_abs_diff_vs_none", 2)
        return

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

    hw = f"{args.device}, {args.threads} thread(s)"
    if speed_rows:
        print(f"\n### Rollout speed (32x32, guidance 1.5, DiT as below, SVD UNet tiny; {hw})\n")
        print("| network | denoising steps | frames/s (median) | min–max |\n|---|---|---|---|")
        for r in speed_rows:
            print(f"| {r['network']} | {r['steps']} | {r['fps_median']:.1f} | "
                  f"{r['fps_min']:.1f}–{r['fps_max']:.1f} |")  # fmt: skip
    setup = (f"{args.objective}, residual={args.residual}, sigma_data={args.sigma_data}, "
             f"DiT-{args.size} {args.network_kwargs} {params / 1e3:.0f}k params, {iters} steps "
             f"(batch {args.batch} x {args.clip} frames) in {train_s:.0f} s, lr {args.lr}, "
             f"{args.sampling_steps} sampling steps")  # fmt: skip
    if latent:
        setup += (f"; on the latents of a per-frame KL tokenizer (2x down, 4 channels) trained "
                  f"{latent['tokenizer_steps']} steps in {latent['tokenizer_s']:.0f} s, held-out "
                  f"reconstruction {latent['recon_psnr']:.2f} dB, latent_scale "
                  f"{latent['latent_scale']}, anchored decoding")  # fmt: skip
    print(f"\n### Quality on {len(held)} held-out Crafter episodes ({args.resolution}x"
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
    for r in ctrl:
        print(f"| {r['guidance_scale']:g} | {r['action_effect_l1']:.4f} |")
    print(f"\n### 100-frame rollout, PSNR of the mean MSE (dB), {long['episodes']} episodes, "
          "sliding window of 8\n")  # fmt: skip
    print("| step | model | copy last context frame | model: to nearest training frame | "
          "real frames: to nearest training frame |\n|---|---|---|---|---|")  # fmt: skip
    for t in (1, 2, 4, 8, 16, 25, 50, 75, 100):
        print(f"| {t} | {long['psnr'][t - 1]:.2f} | {long['psnr_copy'][t - 1]:.2f} | "
              f"{long['nn_psnr'][t - 1]:.2f} | {long['nn_psnr_real'][t - 1]:.2f} |")  # fmt: skip
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
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"\nraw numbers: {out}; plots: {', '.join(files)}")


if __name__ == "__main__":
    main()
