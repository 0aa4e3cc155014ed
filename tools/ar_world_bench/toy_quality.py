"""Quality on moving squares (in memory): next-frame and 8-step PSNR/SSIM against copy-last-frame
and action controllability, raster and diagonal decoding."""

from __future__ import annotations

import argparse
import time

import torch
from torchmetrics.functional import structural_similarity_index_measure as ssim

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.decoders import make_decoder
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.ar_world.sizes import transformer_spec
from wmkit.core import to_float_video
from wmkit.core.testing import ToyTokenizer, moving_squares


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
        train.action_spec, ToyTokenizer(patch=4, levels=4),
        transformer=transformer_spec(args.size), max_frames=length,
        decoder=make_decoder(window=args.window, temperature=0.0),
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
        model.decoder = make_decoder(decoding, args.window, temperature=0.0)
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


def print_quality(args: argparse.Namespace, qual: dict) -> None:
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
