"""Plots of the diffusion-world benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
