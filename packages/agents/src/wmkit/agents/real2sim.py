"""Policy evaluation inside a world model, checked against the real environment (Real2Sim).

Vid2World (Huang et al., 2025) and WorldEval/WPE evaluate real policies inside a world model
and ask whether the model ranks policies as reality does. :func:`evaluate_policies` runs each
policy from the same starts in both: the real env is reset with each seed, the policy acts
for ``context_length - 1`` steps there, and those real frames and actions become the world
model's context; then the policy runs ``horizon`` more steps in the real env and, batched over
all seeds, in the world model (acting on the model's own frames). The report gives per-policy
mean return and success in both, and the agreement across policies: Pearson and Spearman
correlation and the fraction of policy pairs ordered the same way (Vid2World reports the
correlation; the pairwise accuracy is the number that matters with few policies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from wmkit.agents.contexts import ClipContexts
from wmkit.agents.imagination import Imagination, RewardFn
from wmkit.agents.policies import Policy
from wmkit.agents.real_env import RealEnv
from wmkit.agents.spaces import actions_to_torch
from wmkit.core import WorldModel, to_float_video

__all__ = ["PolicyScore", "Real2SimReport", "evaluate_policies", "pairwise_agreement"]


@dataclass
class PolicyScore:
    """One policy's mean return and success rate in the real env and in the world model."""

    name: str
    real_return: float
    model_return: float
    real_success: float
    model_success: float


@dataclass
class Real2SimReport:
    """Per-policy scores and how well the world model's ranking matches the real one."""

    policies: list[PolicyScore]
    pearson: float
    spearman: float
    pairwise_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # average ties
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pairwise_agreement(real: Sequence[float], model: Sequence[float]) -> float:
    """Fraction of policy pairs with a strict real order that the model orders the same way."""
    r, m = np.asarray(real, float), np.asarray(model, float)
    pairs = [(i, j) for i in range(len(r)) for j in range(i + 1, len(r)) if r[i] != r[j]]
    if not pairs:
        return float("nan")
    return float(np.mean([np.sign(r[i] - r[j]) == np.sign(m[i] - m[j]) for i, j in pairs]))


def _threshold_success(real_env: RealEnv) -> Callable[[np.ndarray], bool] | None:
    """The default success test: the episode's best reward reaches the env's
    ``success_threshold``; ``None`` (success not measured) when the env has none."""
    if not hasattr(real_env, "success_threshold"):
        return None
    thr = float(real_env.success_threshold)  # type: ignore[attr-defined]

    def success_fn(rewards: np.ndarray) -> bool:
        return bool(len(rewards) and rewards.max() >= thr)

    return success_fn


def _real_episode(
    policy: Policy, real_env: RealEnv, seed: int, context_length: int, steps: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Run ``policy`` in ``real_env`` from ``seed``: the first ``context_length`` frames
    ``[T0, H, W, C]`` and the actions between them (the model's context), and the rewards of
    the up to ``steps`` steps after them (the real return to compare with)."""
    policy.reset()
    frame = real_env.reset(int(seed))
    frames, actions, rewards = [frame], [], []
    for t in range(context_length - 1 + steps):
        action = np.asarray(policy(frame[None]))[0]
        frame, reward, done = real_env.step(action)
        if t < context_length - 1:
            actions.append(action)
            frames.append(frame)
        else:
            rewards.append(reward)
        if done or getattr(real_env, "truncated", False):
            break
    if len(frames) < context_length:
        raise ValueError(
            f"the real episode of seed {seed} ended before {context_length} context "
            "frames were collected; use a shorter context_length"
        )
    return np.stack(frames[:context_length]), actions, np.asarray(rewards, float)


def _imagined_rewards(
    policy: Policy,
    world_model: WorldModel,
    ctx_frames: list[np.ndarray],
    ctx_actions: list[list[np.ndarray]],
    context_length: int,
    steps: int,
    reward_fn: RewardFn | None,
    device: str | None,
) -> np.ndarray:
    """Run ``policy`` for ``steps`` steps in ``world_model`` from the real contexts (one per
    seed, all at once); returns the imagined rewards ``[S, steps]``."""
    spec = world_model.action_spec
    n = len(ctx_frames)
    video = to_float_video(np.stack(ctx_frames))  # [S, T0, C, H, W]
    acts = None
    if context_length > 1:
        acts = actions_to_torch(spec, np.stack([np.stack(a) for a in ctx_actions]),
                                n * (context_length - 1)).reshape(
            n, context_length - 1, *spec.action_shape)  # fmt: skip
    core = Imagination(world_model, ClipContexts(video, acts), n, reward_fn,
                       None, steps, device)  # fmt: skip
    rng = np.random.default_rng(0)
    policy.reset()
    obs = core.start(video, acts, rng)
    model_rewards = []
    with torch.no_grad():
        for _ in range(steps):
            obs, reward, _, _ = core.step(policy(obs), rng)
            model_rewards.append(reward)
    return np.stack(model_rewards, axis=1)  # [S, steps]


def _score_policy(
    name: str,
    policy: Policy,
    real_env: RealEnv,
    world_model: WorldModel,
    seeds: Sequence[int],
    context_length: int,
    steps: int,
    reward_fn: RewardFn | None,
    success_fn: Callable[[np.ndarray], bool] | None,
    device: str | None,
) -> PolicyScore:
    """One policy's mean return and success over ``seeds``, in the real env and in the model
    started from the same real contexts."""
    real_returns, real_succ, ctx_frames, ctx_actions = [], [], [], []
    for seed in seeds:
        frames, actions, r = _real_episode(policy, real_env, seed, context_length, steps)
        ctx_frames.append(frames)
        ctx_actions.append(actions)
        real_returns.append(r.sum())
        real_succ.append(success_fn(r) if success_fn else float("nan"))
    mr = _imagined_rewards(policy, world_model, ctx_frames, ctx_actions, context_length, steps,
                           reward_fn, device)  # fmt: skip
    model_succ = [success_fn(x) for x in mr] if success_fn else [float("nan")]
    return PolicyScore(
        name=name,
        real_return=float(np.mean(real_returns)),
        model_return=float(mr.sum(axis=1).mean()),
        real_success=float(np.mean(real_succ)),
        model_success=float(np.mean(model_succ)),
    )


def evaluate_policies(
    policies: Mapping[str, Policy],
    real_env: RealEnv,
    world_model: WorldModel,
    seeds: Sequence[int],
    horizon: int | None = None,
    context_length: int = 1,
    reward_fn: RewardFn | None = None,
    success_fn: Callable[[np.ndarray], bool] | None = None,
    device: str | None = None,
) -> Real2SimReport:
    """Evaluate ``policies`` in ``real_env`` and in ``world_model`` from the same starts.

    Args:
        policies: name → policy (``obs uint8 [B, H, W, C] -> actions``).
        real_env: the real environment (``reset(seed)``, ``step``).
        world_model: the model to evaluate in.
        seeds: episode seeds (the same starts for every policy).
        horizon: steps after the context (default: ``max_steps - context_length + 1``).
        context_length: real frames given to the model as context.
        reward_fn: rewards of imagined steps from frames; default: the model's head.
        success_fn: rewards ``[T]`` of one episode → success; default: ``max(rewards) >=
            real_env.success_threshold`` when the env has one, else NaN success.
    """
    if not policies:
        raise ValueError("policies is empty")
    if not seeds:
        raise ValueError("seeds is empty")
    if context_length < 1:
        raise ValueError(f"context_length must be >= 1; got {context_length}")
    spec = world_model.action_spec
    spec.check_compatible(real_env.action_spec, "world model vs real env actions")
    steps = horizon or real_env.max_steps - context_length + 1
    if steps < 1:
        raise ValueError(f"horizon must be >= 1; got {steps}")
    if success_fn is None:
        success_fn = _threshold_success(real_env)
    scores = [
        _score_policy(
            name,
            policy,
            real_env,
            world_model,
            seeds,
            context_length,
            steps,
            reward_fn,
            success_fn,
            device,
        )
        for name, policy in policies.items()
    ]
    real = np.array([s.real_return for s in scores])
    model = np.array([s.model_return for s in scores])
    return Real2SimReport(
        policies=scores,
        pearson=_pearson(real, model),
        spearman=_pearson(_rank(real), _rank(model)),
        pairwise_accuracy=pairwise_agreement(real, model),
    )
