"""Diffusion objectives: what the network's output means, how training noises frames, and
which sampler undoes it. One small dataclass per family, each with its own parameters.

- :class:`DDPMObjective`: diffusers' discrete DDPM forward process (Ho et al. 2020) with
  ``epsilon``, ``v_prediction`` (Salimans & Ho 2022) or ``sample`` targets, sampled with any
  of diffusers' DDPM-family schedulers (:mod:`~wmkit.diffusion_world.schedulers`).
- :class:`EDMObjective`: EDM preconditioning and training noise levels (Karras et al. 2022),
  as DIAMOND (Alonso et al. 2024) uses for its world models (:mod:`~wmkit.diffusion_world.edm`).
- :class:`FlowObjective`: flow matching / rectified flow (Lipman et al. 2022, Liu et al. 2022),
  velocity prediction (:mod:`~wmkit.diffusion_world.flow`).

Every objective draws an independent noise level per frame (Diffusion Forcing, Chen et al.
2024, arXiv:2407.01392). A new objective is a new subclass of :class:`Objective`, named in a
config by its ``class_path`` (:meth:`Objective.to_config`, :func:`build_objective`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from wmkit.core.components import build_component
from wmkit.diffusion_world.edm import (
    EDMNextFrameSampler,
    edm_scalings,
    sample_training_sigmas,
    sigma_to_level,
)
from wmkit.diffusion_world.flow import (
    FlowNextFrameSampler,
    flow_noise,
    flow_velocity,
    gaussian_velocity_skip,
    sample_flow_times,
)
from wmkit.diffusion_world.sampler import NextFrameSampler
from wmkit.diffusion_world.schedulers import (
    PredictionType,
    SamplerName,
    add_frame_noise,
    frame_target,
    make_training_scheduler,
)

__all__ = ["DDPMObjective", "EDMObjective", "FlowObjective", "Objective", "build_objective"]


class Objective:
    """Base of the objectives (subclasses are dataclasses of JSON-serialisable fields).

    ``levels [B, T]`` are the objective's per-frame noise levels (DDPM timesteps, EDM σ, flow
    ``t ∈ [0, 1]``); 0 is a clean frame for all three."""

    #: training frames kept clean (level 0, no loss) when the model does not say
    default_clean_history_prob: ClassVar[float] = 0.0
    #: the sampler may noise the history (``history_noise_level``, DDPM only)
    noisy_history: ClassVar[bool] = False

    def training_levels(self, shape: tuple[int, int], clean: Tensor, device: Any) -> Tensor:
        """Random per-frame training levels ``[B, T]``, 0 where ``clean``."""
        raise NotImplementedError

    def noised(self, y: Tensor, noise: Tensor, levels: Tensor, clean: Tensor) -> Tensor:
        """``y [B, T, ...]`` noised with ``noise`` to ``levels``; clean frames exact."""
        raise NotImplementedError

    def target(self, y: Tensor, noise: Tensor, noisy: Tensor, levels: Tensor) -> Tensor:
        """What the training loss regresses the network's output on."""
        raise NotImplementedError

    def network_inputs(self, x: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        """``(x scaled for the network, the network's timestep input [B, T])``."""
        raise NotImplementedError

    def prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        """The denoiser's prediction (what its sampler consumes) from the network's ``out``
        for ``x`` at ``levels``. ``residual``: ``x`` is a frame change."""
        raise NotImplementedError

    def loss_prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        """What the loss compares with :meth:`target`: the network's raw output by default."""
        return out

    def make_sampler(self, num_steps: int, guidance_scale: float, history_noise_level: int) -> Any:
        """The next-frame sampler of this objective."""
        raise NotImplementedError

    def set_clip_sample(self, clip: bool) -> None:
        """Clip predicted samples to [-1, 1] (pixels) or not (latents, frame changes)."""

    def to_config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what :func:`build_objective` rebuilds it from."""
        cls = type(self)
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}


def build_objective(spec: Objective | dict[str, Any]) -> Objective:
    """An :class:`Objective` from itself or its config ``{"class_path", "init_args"}``."""
    return build_component(spec, Objective, "objective")


@dataclass
class DDPMObjective(Objective):
    """Diffusers' DDPM forward process with per-frame timesteps.

    Args:
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        num_train_timesteps: diffusion steps of the training schedule.
        beta_schedule: diffusers beta schedule name.
        sampler: sampling scheduler, ``"ddpm"``, ``"ddim"``, ``"euler"`` or ``"dpm"``.
    """

    prediction_type: PredictionType = "v_prediction"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    sampler: SamplerName = "ddim"

    noisy_history: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1; got {self.num_train_timesteps}")
        # the diffusers forward process (not a field: not part of the config)
        self.scheduler = make_training_scheduler(
            self.num_train_timesteps, self.beta_schedule, self.prediction_type
        )

    def training_levels(self, shape: tuple[int, int], clean: Tensor, device: Any) -> Tensor:
        levels = torch.randint(0, self.num_train_timesteps, shape, device=device)
        return levels.masked_fill(clean, 0) if clean.any() else levels

    def noised(self, y: Tensor, noise: Tensor, levels: Tensor, clean: Tensor) -> Tensor:
        noisy = add_frame_noise(self.scheduler, y, noise, levels)
        if clean.any():  # level 0 still adds a little noise in diffusers: keep them exact
            noisy = torch.where(clean[..., None, None, None], y, noisy)
        return noisy

    def target(self, y: Tensor, noise: Tensor, noisy: Tensor, levels: Tensor) -> Tensor:
        return frame_target(self.scheduler, y, noise, levels)

    def network_inputs(self, x: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        return x, levels

    def prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        return out

    def make_sampler(
        self, num_steps: int, guidance_scale: float, history_noise_level: int
    ) -> NextFrameSampler:
        return NextFrameSampler(
            self.scheduler, self.sampler, num_steps, guidance_scale, history_noise_level
        )

    def set_clip_sample(self, clip: bool) -> None:
        self.scheduler.register_to_config(clip_sample=clip)


@dataclass
class EDMObjective(Objective):
    """EDM preconditioning ``D = c_skip y + c_out F(c_in y, c_noise)``, trained in ``F``'s
    units, sampled with diffusers' ``EDMEulerScheduler`` (:mod:`~wmkit.diffusion_world.edm`).

    Args:
        sigma_data: standard deviation of what is diffused (frames, or frame changes).
        sigma_min: smallest sampling noise level.
        sigma_max: largest sampling noise level (where sampling starts).
        p_mean: mean of ``ln σ`` in training.
        p_std: standard deviation of ``ln σ`` in training.
    """

    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 5.0
    p_mean: float = -0.4
    p_std: float = 1.2

    # its training levels never reach 0: it learns the clean history it samples with here
    default_clean_history_prob: ClassVar[float] = 0.5

    def __post_init__(self) -> None:
        if self.sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0; got {self.sigma_data}")

    def training_levels(self, shape: tuple[int, int], clean: Tensor, device: Any) -> Tensor:
        sigmas = sample_training_sigmas(shape, self.p_mean, self.p_std, device)
        return sigmas.masked_fill(clean, 0.0)

    def noised(self, y: Tensor, noise: Tensor, levels: Tensor, clean: Tensor) -> Tensor:
        return y + levels[..., None, None, None] * noise

    def target(self, y: Tensor, noise: Tensor, noisy: Tensor, levels: Tensor) -> Tensor:
        # EDM's weighting λ = 1 / c_out² written in F's units: F ≈ (y - c_skip y_noisy) / c_out
        c_skip, c_out, _ = edm_scalings(levels[..., None, None, None], self.sigma_data)
        return (y - c_skip * noisy) / c_out.clamp_min(1e-8)

    def network_inputs(self, x: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        _, _, c_in = edm_scalings(levels.float()[..., None, None, None], self.sigma_data)
        return c_in * x, sigma_to_level(levels.float())

    def prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        c_skip, c_out, _ = edm_scalings(levels.float()[..., None, None, None], self.sigma_data)
        return c_skip * x + c_out * out

    def make_sampler(
        self, num_steps: int, guidance_scale: float, history_noise_level: int
    ) -> EDMNextFrameSampler:
        return EDMNextFrameSampler(
            self.sigma_min, self.sigma_max, self.sigma_data, num_steps=num_steps,
            guidance_scale=guidance_scale,
        )  # fmt: skip


@dataclass
class FlowObjective(Objective):
    """Flow matching: ``x_t = (1 - t) x0 + t ε``, the network predicts the velocity ``ε - x0``,
    sampled with diffusers' ``FlowMatchEulerDiscreteScheduler``
    (:mod:`~wmkit.diffusion_world.flow`).

    Args:
        shift: diffusers' timestep shift of the sampling schedule (1: none).
        sigma_data: with a residual denoiser, the standard deviation of the frame changes: it
            sets the Gaussian velocity skip
            (:func:`~wmkit.diffusion_world.flow.gaussian_velocity_skip`).
        num_train_timesteps: the network sees ``t`` times this as its timestep.
    """

    shift: float = 1.0
    sigma_data: float = 0.5
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0; got {self.sigma_data}")
        if self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1; got {self.num_train_timesteps}")

    def training_levels(self, shape: tuple[int, int], clean: Tensor, device: Any) -> Tensor:
        return sample_flow_times(shape, device).masked_fill(clean, 0.0)

    def noised(self, y: Tensor, noise: Tensor, levels: Tensor, clean: Tensor) -> Tensor:
        return flow_noise(y, noise, levels)  # clean frames (t = 0) stay exact

    def target(self, y: Tensor, noise: Tensor, noisy: Tensor, levels: Tensor) -> Tensor:
        return flow_velocity(y, noise)

    def network_inputs(self, x: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        return x, levels.float() * self.num_train_timesteps

    def prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        if residual:
            skip = gaussian_velocity_skip(levels.float(), self.sigma_data)
            out = out + skip.reshape(*levels.shape, 1, 1, 1).to(x.dtype) * x
        return out

    def loss_prediction(self, x: Tensor, levels: Tensor, out: Tensor, residual: bool) -> Tensor:
        return self.prediction(x, levels, out, residual)

    def make_sampler(
        self, num_steps: int, guidance_scale: float, history_noise_level: int
    ) -> FlowNextFrameSampler:
        return FlowNextFrameSampler(self.num_train_timesteps, self.shift, num_steps, guidance_scale)
