"""Noise schedules from diffusers, with an independent noise level per frame.

Training uses ``DDPMScheduler.add_noise`` / ``get_velocity`` (diffusers' own forward
process): they index ``alphas_cumprod`` by an arbitrary timestep tensor but broadcast it
over the *leading* dimension only, so per-frame timesteps ``[B, T]`` are applied by folding
frames into the batch (``[B, T, ...]`` → ``[(B T), ...]``). Sampling uses any of diffusers'
discrete-time samplers built from the same config (``SAMPLERS``), so a model trained once
samples with DDPM, DDIM, Euler or DPM-Solver++ and any number of steps.
"""

from __future__ import annotations

from typing import Literal

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from einops import rearrange
from torch import Tensor

__all__ = [
    "PREDICTION_TYPES",
    "SAMPLERS",
    "PredictionType",
    "SamplerName",
    "add_frame_noise",
    "frame_target",
    "make_sampling_scheduler",
    "make_training_scheduler",
]

PredictionType = Literal["epsilon", "v_prediction", "sample"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction", "sample")
SamplerName = Literal["ddpm", "ddim", "euler", "dpm"]
SAMPLERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm": DPMSolverMultistepScheduler,
}


def make_training_scheduler(
    num_train_timesteps: int = 1000,
    beta_schedule: str = "squaredcos_cap_v2",
    prediction_type: PredictionType = "v_prediction",
    clip_sample: bool = True,
) -> DDPMScheduler:
    """The forward process. ``trailing`` spacing so few-step samplers start from pure noise."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type must be one of {PREDICTION_TYPES}; got {prediction_type!r}"
        )
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        prediction_type=prediction_type,
        clip_sample=clip_sample,
        timestep_spacing="trailing",
    )


def make_sampling_scheduler(training: DDPMScheduler, name: SamplerName) -> SchedulerMixin:
    """A fresh sampler of kind ``name`` sharing the training schedule's betas and objective."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}; got {name!r}")
    return SAMPLERS[name].from_config(training.config)


def add_frame_noise(
    scheduler: DDPMScheduler, x: Tensor, noise: Tensor, timesteps: Tensor
) -> Tensor:
    """``x`` ``[B, T, ...]`` noised to a level per frame, ``timesteps`` ``[B, T]`` (long)."""
    b = x.shape[0]
    flat = scheduler.add_noise(
        rearrange(x, "b t ... -> (b t) ..."),
        rearrange(noise, "b t ... -> (b t) ..."),
        timesteps.reshape(-1),
    )
    return rearrange(flat, "(b t) ... -> b t ...", b=b)


def frame_target(scheduler: DDPMScheduler, x: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
    """The regression target of the scheduler's ``prediction_type``, per frame."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x
    b = x.shape[0]
    flat = scheduler.get_velocity(
        rearrange(x, "b t ... -> (b t) ..."),
        rearrange(noise, "b t ... -> (b t) ..."),
        timesteps.reshape(-1),
    )
    return rearrange(flat, "(b t) ... -> b t ...", b=b)
