"""Play a latent-action world model with real controls (Genie §2.3, in a learned form).

Genie lets a person pick one of its 8 latent actions by trial; here a small network learned
from a few labelled episodes maps each real action to the latent action that usually
explains it: ``ActionMapper`` (an MLP with one classifier per latent token, or a regressor
for continuous latents) and ``fit_action_mapper``. ``MappedWorldModel`` wraps any
latent-action ``WorldModel`` so that it takes real actions.

A real action may go with several latent actions (the latent also encodes whatever else
changed); the mapper predicts the most likely code per token, independently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import (
    ActionSpec,
    PretrainedMixin,
    StepwiseRolloutMixin,
    WorldModel,
    WorldState,
)
from wmkit.core.protocols import StepOutput
from wmkit.core.world_model import check_world_model_inputs
from wmkit.latent_action.probe import latent_features

__all__ = ["ActionMapper", "MappedWorldModel", "fit_action_mapper"]


class ActionMapper(nn.Module, PretrainedMixin):
    """Real action → latent action.

    Args:
        action_spec: the real actions' spec.
        latent_action_spec: the latent actions' spec (of the latent action model).
        hidden: MLP width.
    """

    def __init__(
        self, action_spec: ActionSpec, latent_action_spec: ActionSpec, hidden: int = 64
    ) -> None:
        super().__init__()
        self.action_spec = action_spec
        self.latent_action_spec = latent_action_spec
        in_dim = latent_features(action_spec, action_spec.sample((1,))).shape[1]
        self._sizes = (
            list(latent_action_spec.token_vocab_sizes)
            if latent_action_spec.is_discrete
            else [latent_action_spec.num_tokens]
        )
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, sum(self._sizes))
        )

    def logits(self, actions: Tensor) -> Tensor:
        """Real actions ``[N, *action_shape]`` → raw outputs ``[N, sum(vocab)]`` / ``[N, K]``."""
        return self.net(latent_features(self.action_spec, actions))

    def _loss(self, actions: Tensor, latents: Tensor) -> Tensor:
        out = self.logits(actions)
        spec = self.latent_action_spec
        if spec.is_discrete:
            ids = spec.to_tokens(latents)  # [N, K]
            parts = out.split(self._sizes, dim=1)
            return sum(F.cross_entropy(p, ids[:, k]) for k, p in enumerate(parts)) / len(parts)
        target = latent_features(spec, latents)
        return F.mse_loss(torch.tanh(out), target)

    @torch.no_grad()
    def forward(self, actions: Tensor) -> Tensor:
        """Real actions ``[N, *action_shape]`` → latent actions ``[N, *latent_shape]``."""
        self.action_spec.validate(actions, name="actions", batch_dims=1)
        out = self.logits(actions)
        spec = self.latent_action_spec
        if spec.is_discrete:
            ids = torch.stack([p.argmax(1) for p in out.split(self._sizes, dim=1)], 1)
            return spec.from_tokens(ids)
        low, high = spec._bounds(out)
        values = (torch.tanh(out).reshape(len(out), *spec.action_shape) + 1) / 2
        return low + values * (high - low)


def fit_action_mapper(
    actions: Tensor,
    latent_actions: Tensor,
    action_spec: ActionSpec,
    latent_action_spec: ActionSpec,
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> ActionMapper:
    """Fit an ``ActionMapper`` on paired transitions: real ``[N, *action_shape]`` and the
    latent actions inferred for the same transitions ``[N, *latent_shape]`` (e.g. from
    ``probe.collect_transitions`` on a few labelled episodes). Full-batch AdamW."""
    action_spec.validate(actions, name="actions", batch_dims=1)
    latent_action_spec.validate(latent_actions, name="latent_actions", batch_dims=1)
    if len(actions) != len(latent_actions) or len(actions) == 0:
        raise ValueError(
            f"actions and latent_actions must pair up (same N > 0); got {len(actions)} and "
            f"{len(latent_actions)}"
        )
    torch.manual_seed(seed)
    mapper = ActionMapper(action_spec, latent_action_spec, hidden)
    opt = torch.optim.AdamW(mapper.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            mapper._loss(actions, latent_actions).backward()
            opt.step()
    return mapper.eval()


class MappedWorldModel(StepwiseRolloutMixin):
    """A ``WorldModel`` taking real actions, over a latent-action world model and a mapper.

    Args:
        world_model: any ``WorldModel`` whose ``action_spec`` is the latent action spec.
        mapper: maps real actions to that spec.
    """

    def __init__(self, world_model: WorldModel, mapper: ActionMapper) -> None:
        mapper.latent_action_spec.check_compatible(
            world_model.action_spec, what="world model action spec vs mapper latent spec"
        )
        self.world_model, self.mapper = world_model, mapper

    @property
    def action_spec(self) -> ActionSpec:
        return self.mapper.action_spec

    def _map(self, actions: Tensor) -> Tensor:
        b, t = actions.shape[:2]
        flat = actions.reshape(b * t, *self.action_spec.action_shape)
        return self.mapper(flat).reshape(b, t, *self.mapper.latent_action_spec.action_shape)

    def reset(self, context_frames: Tensor, context_actions: Tensor | None = None) -> WorldState:
        check_world_model_inputs(self.action_spec, context_frames, None, context_actions)
        mapped = None if context_actions is None else self._map(context_actions)
        return self.world_model.reset(context_frames, mapped)

    def step(self, state: WorldState, action: Tensor) -> StepOutput:
        self.action_spec.validate(action, name="action", batch_dims=1)
        return self.world_model.step(state, self.mapper(action))
