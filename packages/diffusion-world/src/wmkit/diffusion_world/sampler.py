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
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDPMScheduler
from torch import Tensor

from wmkit.diffusion_world.schedulers import SamplerName, add_frame_noise, make_sampling_scheduler

__all__ = [
    "Denoiser",
    "FrameSampler",
    "NextFrameSampler",
    "SamplingConfig",
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


class FrameSampler:
    """The next-frame sampling loop the objectives' samplers share.

    Subclasses hold a diffusers ``scheduler``, ``num_steps`` and ``guidance_scale``, and fill
    in the hooks: :meth:`history_levels` (and :meth:`noised_history`) for the history,
    :meth:`initial` for the starting noise and :meth:`denoise_step` for one scheduler step.
    """

    scheduler: Any
    num_steps: int
    guidance_scale: float

    def history_levels(self, b: int, length: int, device: torch.device) -> Tensor:
        """The history's noise levels ``[B, L]`` (clean: 0)."""
        return torch.zeros(b, length, device=device)

    def noised_history(self, history: Tensor, levels: Tensor) -> Tensor:
        """The history as the network sees it at ``levels`` (clean: as is)."""
        return history

    def initial(self, noise: Tensor) -> Tensor:
        """The new frame at the first step, from standard normal ``noise``."""
        return noise

    def denoise_step(
        self, next_frame: Callable[[Tensor, float], Tensor], i: int, t: Tensor, x: Tensor
    ) -> Tensor:
        """The new frame ``x`` after the scheduler's step ``i`` (timestep ``t``)."""
        raise NotImplementedError

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
        self.scheduler.set_timesteps(self.num_steps, device=device)
        levels = self.history_levels(b, length, device)
        history = self.noised_history(history, levels)
        conds = condition_sequences(history_cond, cond, null_cond)
        next_frame = next_frame_denoiser(
            denoise, history, levels, conds, self.guidance_scale, self.num_steps
        )
        x = self.initial(torch.randn(b, *history.shape[2:], device=device, dtype=history.dtype))
        for i, t in enumerate(self.scheduler.timesteps):
            x = self.denoise_step(next_frame, i, t, x)
        return x


class NextFrameSampler(FrameSampler):
    """Samples frame ``t`` given frames ``< t`` with a diffusers DDPM-family scheduler.

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

    def history_levels(self, b: int, length: int, device: torch.device) -> Tensor:
        return torch.full((b, length), float(self.history_noise_level), device=device)

    def noised_history(self, history: Tensor, levels: Tensor) -> Tensor:
        if self.history_noise_level > 0 and history.shape[1]:
            noise = torch.randn_like(history)
            history = add_frame_noise(self.training_scheduler, history, noise, levels.long())
        return history

    def initial(self, noise: Tensor) -> Tensor:
        return noise * self.scheduler.init_noise_sigma

    def denoise_step(
        self, next_frame: Callable[[Tensor, float], Tensor], i: int, t: Tensor, x: Tensor
    ) -> Tensor:
        x_t = self.scheduler.scale_model_input(x, t)
        return self.scheduler.step(next_frame(x_t, float(t)), t, x).prev_sample


@dataclass
class SamplingConfig:
    """How a world model generates frames in ``step`` / ``rollout``.

    Args:
        num_steps: denoising steps per generated frame.
        guidance_scale: causal action guidance scale (1: none; 0: unconditional).
        history_noise_level: DDPM timestep the history is noised to (Diffusion Forcing
            §3.4; 0: clean; the other objectives keep the history clean).
        context_window: frames the network sees at once (history + new).
        history_cache: compute the history's part of the network once per generated frame
            and run each denoising step on the new frame alone (equal to recomputing the
            window up to float rounding); ``False`` recomputes the whole window at every step,
            as Diffusion Forcing and Vid2World do.
        carry_history: carry the history cache from frame to frame instead of sliding the
            window: each new frame's cache is appended (the network's ``append_kv``); once
            the history holds ``context_window - 1`` frames and a frame is generated, it is
            cut to the last ``refresh_keep`` frames and re-encoded at the next step
            (MineWorld's cache refresh). Past a full window the outputs then differ from the
            sliding window's (``refresh_keep = context_window - 1`` equals it). Needs
            ``history_noise_level = 0``.
        refresh_keep: frames kept at a refresh, in ``[1, context_window - 1]`` (``None``:
            ``context_window // 2``).
        cuda_graphs: at inference on CUDA, replay the network's calls as CUDA graphs (one per
            input shape, ``cuda_graphs.py``); networks with ``supports_cuda_graphs`` only.
    """

    num_steps: int = 4
    guidance_scale: float = 1.0
    history_noise_level: int = 0
    context_window: int = 8
    history_cache: bool = True
    carry_history: bool = False
    refresh_keep: int | None = None
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.context_window < 2:
            raise ValueError(f"context_window must be >= 2; got {self.context_window}")
        if self.carry_history and self.history_noise_level:
            raise ValueError(
                "carry_history=True needs a clean history (history_noise_level=0): a noised "
                "history is drawn anew for every frame"
            )
        if self.carry_history and not 1 <= self.keep < self.context_window:
            raise ValueError(
                "refresh_keep must be in [1, context_window - 1] = "
                f"[1, {self.context_window - 1}]; got {self.keep}"
            )

    @property
    def keep(self) -> int:
        """History frames kept at a ``carry_history`` refresh."""
        return self.context_window // 2 if self.refresh_keep is None else self.refresh_keep
