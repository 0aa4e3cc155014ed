"""Flow matching (rectified flow) with a noise level per frame, and its sampler.

Forward process (Liu et al. 2022, Lipman et al. 2022; the convention of diffusers'
``FlowMatchEulerDiscreteScheduler`` and Stable Diffusion 3): ``x_t = (1 - t) x0 + t ε`` with
``t ∈ [0, 1]`` (``t = 0`` clean, ``t = 1`` pure noise); the network predicts the velocity
``v = dx_t/dt = ε - x0``. Diffusion Forcing draws ``t ~ U(0, 1)`` independently per frame.
:func:`flow_noise` computes ``x_t`` for per-frame ``t [B, T]`` directly, which is the formula
of ``FlowMatchEulerDiscreteScheduler.scale_noise`` (tested equal): ``scale_noise`` looks each
timestep up in its discrete table one sample at a time, so it cannot take continuous,
per-frame ``t`` (nor ``t = 0`` for clean context frames).

The network sees ``t · num_train_timesteps`` as its timestep (the units of diffusers'
flow-matching timesteps and of our sinusoidal embeddings).

Sampling (:class:`FlowNextFrameSampler`) runs diffusers' ``FlowMatchEulerDiscreteScheduler``
(``set_timesteps(num_steps)``, then ``step(v, t, x)``: ``x ← x + (t_next - t) v``) on the
newest frame while the history stays clean (``t = 0``). Its ``step`` takes one scalar
timestep for the whole sample (``per_token_timesteps`` exists for per-token schedules); we
only ever denoise the newest frame, so one timestep per step is all we need. One step
(``t: 1 → 0``) returns ``ε - v̂``, the model's posterior-mean estimate of the frame.

``residual=True`` (:func:`gaussian_velocity_skip`): where the diffused quantity is a frame
*change* of small standard deviation ``σd``, the model adds ``s(t) x_t`` to the network's
output, ``s(t)`` being the velocity that is optimal (MMSE) for data ``~ N(0, σd²)``; the
network learns the correction. ``s(1) = 1``, so a zero network output makes one Euler step
land exactly on a zero change: an untrained model is copy-last-frame, as with the other
objectives. This is our addition (EDM's ``c_skip`` written for the flow interpolant); the
papers use plain velocity prediction, which is what ``residual=False`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from wmkit.diffusion_world.sampler import FrameSampler

__all__ = [
    "FlowNextFrameSampler",
    "flow_noise",
    "flow_velocity",
    "gaussian_velocity_skip",
    "sample_flow_times",
]


def _per_frame(t: Tensor, like: Tensor) -> Tensor:
    """``t [B, T]`` → ``[B, T, 1, ...]`` broadcastable against ``like [B, T, ...]``."""
    return t.to(like.dtype).reshape(*t.shape, *([1] * (like.ndim - t.ndim)))


def flow_noise(x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """``x_t = (1 - t) x + t ε`` for ``x``, ``noise`` ``[B, T, ...]`` and ``t [B, T]`` in [0, 1]."""
    s = _per_frame(t, x)
    return (1 - s) * x + s * noise


def flow_velocity(x: Tensor, noise: Tensor) -> Tensor:
    """The regression target ``v = ε - x`` (``dx_t / dt``)."""
    return noise - x


def sample_flow_times(shape: tuple[int, ...], device: torch.device | str) -> Tensor:
    """Training noise levels ``t ~ U(0, 1)``, one per entry (a frame, for Diffusion Forcing)."""
    return torch.rand(shape, device=device)


def gaussian_velocity_skip(t: Tensor, sigma_data: float) -> Tensor:
    """``s(t)`` with ``E[v | x_t] = s(t) x_t`` for data ``~ N(0, σd²)``:
    ``(t - (1 - t) σd²) / ((1 - t)² σd² + t²)``; bounded on [0, 1], ``s(0) = -1``, ``s(1) = 1``."""
    var = (1 - t).square() * sigma_data**2 + t.square()
    return (t - (1 - t) * sigma_data**2) / var


class FlowNextFrameSampler(FrameSampler):
    """Samples frame ``t`` given clean frames ``< t`` with diffusers'
    ``FlowMatchEulerDiscreteScheduler``.

    ``denoise(x [B, T, C, H, W], t [B, T] in [0, 1], cond [B, T, D])`` must return the
    velocity. Causal action guidance is applied to the velocity (linear in the prediction,
    as for ε or v in the DDPM sampler).

    Args:
        num_train_timesteps: the scheduler's timestep scale (``timestep = t · this``).
        shift: diffusers' timestep shift (``t ← shift t / (1 + (shift - 1) t)``; 1: none,
            SD3 uses 3 to spend more steps at high noise).
        num_steps: Euler steps per frame (1 returns the posterior-mean estimate).
        guidance_scale: causal action guidance scale.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        num_steps: int = 4,
        guidance_scale: float = 1.0,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1; got {num_steps}")
        if shift <= 0:
            raise ValueError(f"flow_shift must be > 0; got {shift}")
        with torch.device("cpu"):  # its tables are data, also when models build on meta
            self.scheduler = FlowMatchEulerDiscreteScheduler(
                num_train_timesteps=num_train_timesteps, shift=shift
            )
        self.num_steps = num_steps
        self.guidance_scale = float(guidance_scale)

    def denoise_step(
        self, next_frame: Callable[[Tensor, float], Tensor], i: int, t: Tensor, x: Tensor
    ) -> Tensor:
        v = next_frame(x, float(self.scheduler.sigmas[i]))  # the velocity at t = sigmas[i]
        return self.scheduler.step(v, t, x).prev_sample.to(x.dtype)
