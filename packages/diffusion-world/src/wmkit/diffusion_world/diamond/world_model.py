"""``DiamondWorldModel``: DIAMOND (Alonso et al. 2024, arXiv:2405.12399) behind the
``wmkit.core.WorldModel`` protocol.

It composes the parts passed in (DESIGN.md §5a):

- the next-frame :class:`~wmkit.diffusion_world.diamond.DiamondDenoiser` (network +
  :class:`~wmkit.diffusion_world.diamond.DiamondEDM`) and its
  :class:`~wmkit.diffusion_world.diamond.DiamondSampler` settings;
- optionally CS:GO's upsampling stage (:class:`DiamondUpsamplerConfig`): the public frames are
  then the full-resolution ones;
- optionally a reward/termination model (the released ``rew_end_model``), named by
  ``{"class_path", "init_args"}``: any module with ``forward(obs [B, T, C, H, W], act [B, T],
  next_obs [B, T, C, H, W], state) -> (logits_rew [B, T, 3], logits_end [B, T, 2], (h, c))``.
  Its recurrent state rides in :class:`DiamondState` from ``step`` to ``step``; reward
  ``class - 1`` and termination are sampled from its logits, as DIAMOND's imagination does.

The submodules are named ``denoiser``, ``upsampler`` and ``rew_end_model``, so the state dict
has the released agent's keys (``actor_critic.*`` excepted).

Where we differ: DIAMOND starts from ``n`` real frames and actions (its spawn buffer);
``reset`` takes any number, repeats the first frame and uses action 0 where fewer are given.
With an upsampler, ``reset`` makes the low-resolution frames from the full-resolution ones by
an antialiased bicubic resize rounded to 8 bits (how the CS:GO data was made, up to the
rounding), instead of reading the dataset's low-resolution copies.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import (
    ActionSpec,
    PretrainedMixin,
    StepOutput,
    StepwiseRolloutMixin,
    check_video,
    check_world_model_inputs,
)
from wmkit.diffusion_world.diamond.denoiser import DenoiserLoss, DiamondDenoiser
from wmkit.diffusion_world.diamond.network import DIAMOND_NETWORK_SIZES, DiamondNetwork
from wmkit.diffusion_world.diamond.preconditioning import DiamondEDM
from wmkit.diffusion_world.diamond.sampler import DiamondSampler, DiamondSamplerConfig
from wmkit.diffusion_world.diamond.state import DiamondState
from wmkit.diffusion_world.diamond.upsampling import DiamondUpsamplerConfig, upsample_next_obs

__all__ = ["DiamondWorldModel", "build_component"]

_DERIVED = ("num_actions", "upsampler")  # network arguments the world model sets itself


class DiamondWorldModel(nn.Module, PretrainedMixin, StepwiseRolloutMixin):
    """DIAMOND's world model: next-frame diffusion, optional upsampling and reward/end model.

    Args:
        action_spec: discrete (``n`` actions) or multi-hot (``multi_discrete`` with every
            ``nvec`` entry 2, CS:GO's 51 keys and mouse bins).
        network: :class:`~wmkit.diffusion_world.diamond.DiamondNetwork` arguments
            (``num_actions`` comes from ``action_spec``); ``None``: the released Atari widths.
        objective: :class:`~wmkit.diffusion_world.diamond.DiamondEDM` (or its fields).
        sampler: :class:`~wmkit.diffusion_world.diamond.DiamondSamplerConfig` (or its
            fields); ``None``: the released Atari sampler.
        noise_previous_obs: train with noised conditioning frames (CS:GO).
        upsampler: CS:GO's upsampling stage (``None``: none).
        reward_end: the reward/termination model, or (to be saved by ``save_pretrained``) its
            ``{"class_path", "init_args"}``; ``None``: none (steps return no reward or done).
    """

    #: the reward head predicts the reward's sign (DIAMOND trains on clipped rewards); an
    #: evaluator compares it with the sign of recorded rewards
    reward_transform = "sign"

    def __init__(
        self,
        action_spec: ActionSpec,
        network: dict[str, Any] | None = None,
        objective: DiamondEDM | dict[str, Any] | None = None,
        sampler: DiamondSamplerConfig | dict[str, Any] | None = None,
        noise_previous_obs: bool = False,
        upsampler: DiamondUpsamplerConfig | dict[str, Any] | None = None,
        reward_end: dict[str, Any] | nn.Module | None = None,
    ) -> None:
        super().__init__()
        spec = ActionSpec.coerce(action_spec, "DiamondWorldModel action_spec")
        if spec.kind == "discrete":
            num_actions = int(spec.n)  # type: ignore[arg-type]
        elif spec.kind == "multi_discrete" and set(spec.nvec or ()) == {2}:
            num_actions = len(spec.nvec)  # type: ignore[arg-type]
        else:
            raise ValueError(
                "DiamondWorldModel takes discrete actions or multi-hot ones (multi_discrete "
                f"with every nvec entry 2); got {spec.describe()}"
            )
        self._action_spec = spec
        net_args = {**DIAMOND_NETWORK_SIZES["atari"], **(network or {})}
        net = DiamondNetwork(**{**net_args, "num_actions": num_actions, "upsampler": False})
        self.denoiser = DiamondDenoiser(net, _as(DiamondEDM, objective), noise_previous_obs)
        self.sampler = DiamondSampler(self.denoiser, _as(DiamondSamplerConfig, sampler))
        self.upsampler: DiamondDenoiser | None = None
        self.up_sampler: DiamondSampler | None = None
        up_cfg = None if upsampler is None else _as(DiamondUpsamplerConfig, upsampler)
        if up_cfg is not None:
            self.up_sampler = up_cfg.build()
            self.upsampler = self.up_sampler.denoiser
        self.rew_end_model = (
            reward_end
            if reward_end is None or isinstance(reward_end, nn.Module)
            else build_component(reward_end)
        )
        if self._hub_mixin_config is not None:  # what save_pretrained writes: every field
            self._hub_mixin_config = {
                **self._hub_mixin_config,
                "action_spec": spec.to_dict(),
                "network": {k: v for k, v in net_args.items() if k not in _DERIVED},
                "objective": dataclasses.asdict(self.denoiser.objective),
                "sampler": dataclasses.asdict(self.sampler.config),
                "upsampler": None if up_cfg is None else dataclasses.asdict(up_cfg),
            }  # fmt: skip
            if isinstance(reward_end, nn.Module):  # no config to write: save_pretrained refuses
                self._hub_mixin_config.pop("reward_end", None)

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def num_steps_conditioning(self) -> int:
        return self.denoiser.num_steps_conditioning

    @property
    def upsampling_factor(self) -> int:
        return 1 if self.upsampler is None else int(self.upsampler.upsampling_factor)  # type: ignore[arg-type]

    def _act(self, actions: Tensor) -> Tensor:
        """Actions in the network's form: ids ``[B, T]`` or multi-hot ``[B, T, A]``."""
        return actions.long()

    def low_res(self, frames: Tensor) -> Tensor:
        """Full-resolution frames ``[B, T, C, H, W]`` → the denoiser's resolution (an
        antialiased bicubic resize onto the 8-bit grid); unchanged without an upsampler."""
        f = self.upsampling_factor
        if f == 1:
            return frames
        b, t, c, h, w = frames.shape
        if h % f or w % f:
            raise ValueError(f"frames must be a multiple of {f} in size; got {h}x{w}")
        x = F.interpolate(
            frames.reshape(b * t, c, h, w), size=(h // f, w // f), mode="bicubic", antialias=True
        )
        x = ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
        return x.reshape(b, t, c, h // f, w // f)

    # ------------------------------------------------------------------ training
    def loss(
        self,
        frames: Tensor,
        actions: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> DenoiserLoss:
        """The next-frame denoiser's loss (:meth:`DiamondDenoiser.loss`) on a clip ``frames
        [B, n + K, C, H, W]`` at the denoiser's resolution, ``actions [B, n + K, ...]``
        (action ``t`` taken at frame ``t``)."""
        check_video(frames, "frames")
        self.action_spec.validate(actions)
        if actions.shape[:2] != frames.shape[:2]:
            raise ValueError(
                f"actions must be [B, T, ...] for frames [B, T] = {tuple(frames.shape[:2])}; got "
                f"{tuple(actions.shape)}"
            )
        return self.denoiser.loss(frames, self._act(actions), mask, generator=generator)

    # ------------------------------------------------------------------ WorldModel protocol
    @torch.no_grad()
    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> DiamondState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        b, t0 = context_frames.shape[:2]
        n = self.num_steps_conditioning
        obs = self.low_res(context_frames)  # [B, T0, C, h, w]
        acts = None if context_actions is None else self._act(context_actions[:, : t0 - 1])
        rew_end_state = None
        if self.rew_end_model is not None and acts is not None and t0 > 1:
            # burn-in on the context's transitions, as DIAMOND does on its spawn segment
            *_, rew_end_state = self.rew_end_model(obs[:, :-1], acts, obs[:, 1:], None)
        if acts is None:
            shape = (b, t0 - 1, *self.action_spec.action_shape)
            acts = torch.zeros(shape, dtype=torch.long, device=context_frames.device)
        if t0 < n:  # repeat the first frame, action 0 before it
            obs = torch.cat([obs[:, :1].expand(-1, n - t0, -1, -1, -1), obs], dim=1)
            pad = acts.new_zeros((b, n - t0, *acts.shape[2:]))
            acts = torch.cat([pad, acts], dim=1)
        keep = self._kept_frames()
        frames = context_frames
        if frames.shape[1] < keep:
            frames = torch.cat([frames[:, :1].expand(-1, keep - t0, -1, -1, -1), frames], 1)
        return DiamondState(
            t=t0, frames=frames[:, -keep:], obs=obs[:, -n:],
            actions=acts[:, acts.shape[1] - (n - 1):], rew_end_state=rew_end_state,
        )  # fmt: skip

    def _kept_frames(self) -> int:
        if self.upsampler is None:
            return self.num_steps_conditioning
        return self.upsampler.num_steps_conditioning

    @torch.no_grad()
    def step(
        self, state: DiamondState, action: Tensor, generator: torch.Generator | None = None
    ) -> StepOutput:
        """The frame after ``action [B, ...]``; noise comes from ``generator`` (``None``:
        torch's global generator)."""
        self.action_spec.validate(action, name="action", batch_dims=1)
        if state.obs is None or state.actions is None or action.shape[0] != state.obs.shape[0]:
            raise ValueError(
                "step needs a DiamondState from reset and an action with its batch size; got "
                f"action {tuple(action.shape)}"
            )
        act = self._act(action)[:, None]  # [B, 1, ...]
        prev_act = torch.cat([state.actions, act], dim=1)  # [B, n, ...]
        low = self.sampler.sample(state.obs, prev_act, generator).next_obs  # [B, C, h, w]
        frame = low
        if self.up_sampler is not None:
            k = self.upsampler.num_steps_conditioning  # type: ignore[union-attr]
            frame = upsample_next_obs(self.up_sampler, state.frames[:, -k:], low, generator)
            frame = frame.next_obs  # [B, C, H, W]
        reward = done = None
        rew_end_state = state.rew_end_state
        if self.rew_end_model is not None:
            logits_rew, logits_end, rew_end_state = self.rew_end_model(
                state.obs[:, -1:], act, low[:, None], rew_end_state
            )
            reward = _sample(logits_rew[:, -1], generator).float() - 1  # {-1, 0, 1}
            done = _sample(logits_end[:, -1], generator).float()
        keep = self._kept_frames()
        new_state = DiamondState(
            t=state.t + 1,
            frames=torch.cat([state.frames, frame[:, None]], dim=1)[:, -keep:],
            obs=torch.cat([state.obs[:, 1:], low[:, None]], dim=1),
            actions=prev_act[:, 1:],
            rew_end_state=rew_end_state,
        )
        return StepOutput(frame, reward, new_state, done)


def _sample(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One class per row of ``logits [B, K]`` (a categorical draw)."""
    return torch.multinomial(logits.float().softmax(-1), 1, generator=generator)[:, 0]


def _as(cls: type, value: Any) -> Any:
    """A config dataclass from itself, its dict or ``None`` (its defaults)."""
    if value is None:
        return cls()
    return cls(**value) if isinstance(value, dict) else value


def build_component(spec: dict[str, Any]) -> nn.Module:
    """The module of ``spec = {"class_path": "wmkit.pkg.module.Name", "init_args": {...}}``;
    ``init_args`` entries annotated with a dataclass may be given as dicts."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"a component must be {{'class_path', 'init_args'}}; got {spec!r}")
    module, _, name = str(spec["class_path"]).rpartition(".")
    if not module.startswith("wmkit."):
        raise ValueError(
            f"component class_path must lie under 'wmkit.'; got {spec['class_path']!r}"
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"component class_path {spec['class_path']!r} cannot be imported: {e}"
        ) from e
    args = dict(spec.get("init_args") or {})
    hints = typing.get_type_hints(cls.__init__) if isinstance(cls, type) else {}
    for key, value in args.items():
        hint = hints.get(key)
        for typ in [a for a in typing.get_args(hint) if a is not type(None)] or [hint]:
            if isinstance(value, dict) and isinstance(typ, type) and dataclasses.is_dataclass(typ):
                args[key] = typ(**value)
                break
    return cls(**args)
