"""Sampling-based planning over action sequences in a world model: CEM and MPPI.

Both keep a distribution over ``horizon``-step action sequences per planning problem,
sample a ``population``, imagine every sequence with ``world_model.rollout`` (all problems ×
all samples in one batch), score them with an :class:`~wmkit.agents.Objective` and refit:

- CEM (Rubinstein 1999; as used for visual MPC in VP2 and PlaNet): refit to the ``elites``
  best samples with equal weights.
- MPPI (Williams et al., 2017): refit to *all* samples weighted by
  ``softmax(score / temperature)``. We also refit the spread (the paper keeps the sampling
  noise fixed), clipped below at ``min_std``, so that MPPI and CEM differ only in weights.

Continuous actions use a diagonal Gaussian clipped to the ``ActionSpec`` box; discrete and
multi-discrete actions use independent categoricals per step and component (the
cross-entropy method's original discrete form). ``smoothing`` mixes the old distribution into
the new one. The plan returned is the best *sampled* sequence seen over all iterations (the
current mean is always one of the samples), which for deterministic models is never worse than
the final mean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from wmkit.agents.objectives import Objective
from wmkit.core import WorldModel, check_world_model_inputs

__all__ = ["CEMPlanner", "MPPIPlanner", "PlanResult", "SamplingPlanner"]


@dataclass
class PlanResult:
    """``actions [B, horizon, *action_shape]`` (best sequence found), its ``score [B]`` and
    ``history``: the best score so far after each iteration ``[iterations, B]``."""

    actions: Tensor
    score: Tensor
    history: Tensor


class SamplingPlanner(ABC):
    """Shared machinery of CEM and MPPI (see the module docstring).

    Args:
        world_model: any ``wmkit.core.WorldModel``.
        objective: scores imagined rollouts.
        horizon: planned steps.
        population: action sequences sampled per problem per iteration.
        iterations: refits of the sampling distribution.
        init_std: initial Gaussian std as a fraction of each component's half-range.
        min_std: lower bound on the std, same units.
        smoothing: weight of the old distribution when refitting, in ``[0, 1)``.
        max_batch: most rollouts imagined in one ``world_model.rollout`` call.
        seed: seed of the planner's own sampling generator.
    """

    def __init__(
        self,
        world_model: WorldModel,
        objective: Objective,
        horizon: int = 8,
        population: int = 64,
        iterations: int = 4,
        init_std: float = 1.0,
        min_std: float = 0.05,
        smoothing: float = 0.1,
        max_batch: int = 4096,
        seed: int = 0,
    ) -> None:
        if not isinstance(world_model, WorldModel):
            raise TypeError(
                f"world_model must be a wmkit.core.WorldModel; got {type(world_model).__name__}"
            )
        for name, value in (("horizon", horizon), ("population", population),
                            ("iterations", iterations), ("max_batch", max_batch)):  # fmt: skip
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1; got {value}")
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
        self.world_model, self.objective = world_model, objective
        self.spec = world_model.action_spec
        self.horizon, self.population, self.iterations = (
            int(horizon),
            int(population),
            int(iterations),
        )
        self.init_std, self.min_std, self.smoothing = (
            float(init_std),
            float(min_std),
            float(smoothing),
        )
        self.max_batch = int(max_batch)
        self.generator = torch.Generator().manual_seed(seed)

    @abstractmethod
    def weights(self, scores: Tensor) -> Tensor:
        """Scores ``[B, P]`` → refit weights ``[B, P]`` summing to 1 per row."""

    # ----------------------------------------------------------------------------------
    def _init_dist(self, b: int) -> dict[str, Tensor]:
        h = self.horizon
        if self.spec.kind == "continuous":
            d = self.spec.num_tokens
            low, high = torch.tensor(self.spec.low), torch.tensor(self.spec.high)
            mean = ((low + high) / 2).expand(b, h, d).clone()
            std = (self.init_std * (high - low) / 2).expand(b, h, d).clone()
            return {"mean": mean, "std": std, "low": low, "high": high}
        sizes = self.spec.token_vocab_sizes
        probs = torch.zeros(b, h, len(sizes), max(sizes))
        for k, v in enumerate(sizes):
            probs[:, :, k, :v] = 1.0 / v
        return {"probs": probs}

    def _sample(self, dist: dict[str, Tensor]) -> Tensor:
        """→ flat samples ``[B, P, H, D]`` (floats) or token ids ``[B, P, H, K]``; sample 0 is
        the distribution's mean/mode."""
        p = self.population
        if "mean" in dist:
            mean, std = dist["mean"], dist["std"]
            eps = torch.randn((mean.shape[0], p, *mean.shape[1:]), generator=self.generator)
            eps[:, 0] = 0
            x = mean[:, None] + std[:, None] * eps
            return torch.maximum(torch.minimum(x, dist["high"]), dist["low"])
        probs = dist["probs"]  # [B, H, K, V]
        b, h, k, v = probs.shape
        ids = torch.multinomial(probs.reshape(-1, v), p, replacement=True, generator=self.generator)
        ids = ids.reshape(b, h, k, p).permute(0, 3, 1, 2).clone()  # [B, P, H, K]
        ids[:, 0] = probs.argmax(dim=-1)
        return ids

    def _to_actions(self, x: Tensor) -> Tensor:
        """Flat samples ``[..., H, D|K]`` → actions ``[..., H, *action_shape]``."""
        if self.spec.kind == "continuous":
            return x.reshape(*x.shape[:-1], *self.spec.action_shape)
        return self.spec.from_tokens(x)

    def _refit(self, dist: dict[str, Tensor], x: Tensor, w: Tensor) -> None:
        a = self.smoothing
        wx = w[:, :, None, None]  # [B, P, 1, 1]
        if "mean" in dist:
            mean = (wx * x).sum(dim=1)  # [B, H, D]
            std = (wx * (x - mean[:, None]) ** 2).sum(dim=1).sqrt()
            floor = self.min_std * (dist["high"] - dist["low"]) / 2
            dist["mean"] = a * dist["mean"] + (1 - a) * mean
            dist["std"] = torch.maximum(a * dist["std"] + (1 - a) * std, floor)
            return
        v = dist["probs"].shape[-1]
        freq = (wx[..., None] * F.one_hot(x, v).float()).sum(dim=1)  # [B, H, K, V]
        dist["probs"] = a * dist["probs"] + (1 - a) * freq

    @torch.no_grad()
    def _score(self, context: Tensor, context_actions: Tensor | None, actions: Tensor) -> Tensor:
        """Imagine ``actions [B, P, H, ...]`` from each problem's context → scores ``[B, P]``."""
        b, p = actions.shape[:2]
        device = context.device
        flat = actions.flatten(0, 1).to(device)  # [B*P, H, ...]
        index = torch.arange(b, device=device).repeat_interleave(p)  # [B*P]
        scores = []
        for lo in range(0, b * p, self.max_batch):
            sel = index[lo : lo + self.max_batch]
            ctx_a = None if context_actions is None else context_actions[sel]
            out = self.world_model.rollout(context[sel], flat[lo : lo + self.max_batch], ctx_a)
            acts = flat[lo : lo + self.max_batch]
            scores.append(self.objective(out.frames, out.rewards, acts, context[sel, -1], sel))
        return torch.cat(scores).float().reshape(b, p).cpu()

    @torch.no_grad()
    def plan(self, context_frames: Tensor, context_actions: Tensor | None = None) -> PlanResult:
        """Plan from ``B`` contexts ``[B, T0, C, H, W]`` (and their actions) at once."""
        check_world_model_inputs(self.spec, context_frames, None, context_actions)
        b = context_frames.shape[0]
        dist = self._init_dist(b)
        best_score = torch.full((b,), -float("inf"))
        best = None
        history = []
        rows = torch.arange(b)
        for _ in range(self.iterations):
            x = self._sample(dist)  # [B, P, H, D|K]
            scores = self._score(context_frames, context_actions, self._to_actions(x))  # [B, P]
            top = scores.argmax(dim=1)  # [B]
            improved = scores[rows, top] > best_score
            cand = x[rows, top]  # [B, H, D|K]
            best = cand if best is None else torch.where(improved.view(b, 1, 1), cand, best)
            best_score = torch.where(improved, scores[rows, top], best_score)
            history.append(best_score.clone())
            self._refit(dist, x, self.weights(scores))
        return PlanResult(self._to_actions(best), best_score, torch.stack(history))  # type: ignore[arg-type]


class CEMPlanner(SamplingPlanner):
    """Cross-entropy method: refit to the ``elites`` best samples.

    Args:
        elites: samples kept per iteration (``<= population``).
        **kwargs: see :class:`SamplingPlanner`.
    """

    def __init__(
        self, world_model: WorldModel, objective: Objective, elites: int = 8, **kwargs
    ) -> None:
        super().__init__(world_model, objective, **kwargs)
        if not 1 <= int(elites) <= self.population:
            raise ValueError(f"elites must be in [1, population={self.population}]; got {elites}")
        self.elites = int(elites)

    def weights(self, scores: Tensor) -> Tensor:
        idx = scores.topk(self.elites, dim=1).indices  # [B, E]
        return torch.zeros_like(scores).scatter_(1, idx, 1.0 / self.elites)


class MPPIPlanner(SamplingPlanner):
    """Model predictive path integral control: weights ``softmax(score / temperature)``.

    Args:
        temperature: ``λ``; smaller is greedier (in the objective's units).
        **kwargs: see :class:`SamplingPlanner`.
    """

    def __init__(
        self, world_model: WorldModel, objective: Objective, temperature: float = 0.1, **kwargs
    ) -> None:
        super().__init__(world_model, objective, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.temperature = float(temperature)

    def weights(self, scores: Tensor) -> Tensor:
        return torch.softmax(scores / self.temperature, dim=1)
