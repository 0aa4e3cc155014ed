"""Autoregressive next-frame sampling with causal action guidance (kept apart from networks).

Each step denoises only the newest frame while the history stays clean (or lightly noised:
Diffusion Forcing's stabilisation, arXiv:2407.01392 §3.4, tells the network the history is
slightly noisy so that its own small errors look like noise it was trained to ignore).
The denoising loop is a diffusers scheduler (DDPM / DDIM / Euler / DPM-Solver++), any
number of steps (down to 1).

**Causal action guidance** (Vid2World §3.2): classifier-free guidance on the *current*
action only. The unconditional branch keeps every past action and replaces the newest
frame's action with the learned "no action" vector (the model learns both branches because
training drops actions independently per frame):
``pred = uncond + scale · (cond - uncond)``; ``scale = 1`` is plain conditional sampling,
``scale = 0`` the unconditional path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDPMScheduler
from torch import Tensor

from wmkit.diffusion_world.schedulers import SamplerName, add_frame_noise, make_sampling_scheduler

__all__ = [
    "Denoiser",
    "NextFrameSampler",
    "condition_sequences",
    "guided_next_frame",
    "guided_prediction",
    "next_frame_denoiser",
]

Denoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(x [B, T, C, H, W], timesteps [B, T], cond [B, T, D]) -> prediction [B, T, C, H, W]``."""


def guided_prediction(
    denoise: Denoiser,
    x: Tensor,
    timesteps: Tensor,
    cond: Tensor,
    uncond: Tensor,
    scale: float,
) -> Tensor:
    """Prediction for the newest frame ``[B, C, H, W]`` under causal action guidance.

    ``cond``/``uncond`` are the per-frame conditions ``[B, T, D]`` with and without the
    newest action. Both branches run as one batch.
    """
    if scale == 1.0:
        return denoise(x, timesteps, cond)[:, -1]
    both = denoise(torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([cond, uncond]))
    c, u = both[:, -1].chunk(2)
    return u + scale * (c - u)


def condition_sequences(
    history_cond: Tensor, cond: Tensor, null_cond: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-frame conditions of ``history + new frame`` ``[B, L + 1, D]``, with the new frame's
    action (``cond [B, D]``) and with the "no action" one (``null_cond``)."""
    return (
        torch.cat([history_cond, cond[:, None]], dim=1),
        torch.cat([history_cond, null_cond[:, None]], dim=1),
    )


def guided_next_frame(
    denoise: Denoiser,
    history: Tensor,
    history_levels: Tensor,
    x: Tensor,
    level: float,
    conds: tuple[Tensor, Tensor],
    scale: float,
) -> Tensor:
    """:func:`guided_prediction` for the frame ``x [B, C, H, W]`` being denoised at noise
    ``level`` after ``history [B, L, C, H, W]`` at ``history_levels [B, L]``; ``conds`` from
    :func:`condition_sequences`."""
    b = x.shape[0]
    x_in = torch.cat([history, x[:, None]], dim=1)
    levels = torch.cat([history_levels, history_levels.new_full((b, 1), level)], dim=1)
    return guided_prediction(denoise, x_in, levels, *conds, scale)


def next_frame_denoiser(
    denoise: Denoiser,
    history: Tensor,
    history_levels: Tensor,
    conds: tuple[Tensor, Tensor],
    scale: float,
    steps: int,
) -> Callable[[Tensor, float], Tensor]:
    """What each of a frame's ``steps`` denoising steps calls: ``fn(x [B, C, H, W], level)``
    → :func:`guided_next_frame`'s prediction for the frame after ``history``.

    When the frame takes more than one network call (several steps, or both guidance
    branches) and ``denoise`` offers ``prepare_history(history, history_levels,
    history_cond)`` (the world model's history cache: ``None`` when off), the history is
    encoded here once and every step runs the network on the new frame alone. A ``denoise``
    with ``history_prepared = True`` (the world model's ``carry_history``) already holds the
    cache and is always used that way."""
    calls = steps * (1 if scale == 1.0 else 2)
    prepare = getattr(denoise, "prepare_history", None)
    prepared = getattr(denoise, "history_prepared", False)
    step = None
    if prepare is not None and (calls > 1 or prepared) and history.shape[1]:
        step = prepare(history, history_levels, conds[0][:, :-1])
    if step is None:
        return lambda x, level: guided_next_frame(
            denoise, history, history_levels, x, level, conds, scale
        )
    cond, uncond = conds[0][:, -1:], conds[1][:, -1:]  # the new frame's, [B, 1, D]

    def next_frame(x: Tensor, level: float) -> Tensor:
        levels = history_levels.new_full((x.shape[0], 1), level)
        return guided_prediction(step, x[:, None], levels, cond, uncond, scale)

    return next_frame


class NextFrameSampler:
    """Samples frame ``t`` given frames ``< t``.

    Args:
        training_scheduler: the forward process the network was trained with.
        sampler: ``"ddpm"``, ``"ddim"``, ``"euler"`` or ``"dpm"``.
        num_steps: denoising steps per frame.
        guidance_scale: causal action guidance scale.
        history_noise_level: timestep the history is noised to (0: clean).
    """

    def __init__(
        self,
        training_scheduler: DDPMScheduler,
        sampler: SamplerName = "ddim",
        num_steps: int = 4,
        guidance_scale: float = 1.0,
        history_noise_level: int = 0,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1; got {num_steps}")
        n = training_scheduler.config.num_train_timesteps
        if not 0 <= history_noise_level < n:
            raise ValueError(f"history_noise_level must be in [0, {n}); got {history_noise_level}")
        self.training_scheduler = training_scheduler
        self.scheduler = make_sampling_scheduler(training_scheduler, sampler)
        self.num_steps = num_steps
        self.guidance_scale = float(guidance_scale)
        self.history_noise_level = history_noise_level

    @torch.no_grad()
    def sample(
        self,
        denoise: Denoiser,
        history: Tensor,
        history_cond: Tensor,
        cond: Tensor,
        null_cond: Tensor,
    ) -> Tensor:
        """history ``[B, L, C, H, W]`` (``L >= 0``), their conditions ``[B, L, D]``, the new
        frame's condition ``[B, D]`` and the "no action" one → the new frame ``[B, C, H, W]``."""
        b, length = history.shape[:2]
        device = history.device
        sched = self.scheduler
        sched.set_timesteps(self.num_steps, device=device)
        hist_t = torch.full((b, length), float(self.history_noise_level), device=device)
        if self.history_noise_level > 0 and length:
            history = add_frame_noise(
                self.training_scheduler, history, torch.randn_like(history), hist_t.long()
            )
        conds = condition_sequences(history_cond, cond, null_cond)
        next_frame = next_frame_denoiser(
            denoise, history, hist_t, conds, self.guidance_scale, self.num_steps
        )
        x = torch.randn(b, *history.shape[2:], device=device, dtype=history.dtype)
        x = x * sched.init_noise_sigma
        for t in sched.timesteps:
            x_t = sched.scale_model_input(x, t)
            x = sched.step(next_frame(x_t, float(t)), t, x).prev_sample
        return x
