"""Quality rows of the diffusion-world benchmark on recorded Crafter: training for a wall-clock
budget, next-frame / 8-step metrics against copy-last-frame, controllability, a 100-frame
rollout, and the per-frame tokenizer of ``--latent``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
