"""``WorldModelVecEnv``: ``N`` imagined environments as one stable-baselines3 ``VecEnv``.

One ``world_model.step`` call advances all ``N`` environments, which is where imagination
is fast (the bench compares it with ``N`` single ``WorldModelEnv``). SB3 learners (PPO, SAC,
...) train on it directly, as DIAMOND trains its actor-critic in imagination; MBPO uses it
to branch rollouts from real states. Finished environments restart automatically (SB3
convention: the last observation is in ``infos[i]["terminal_observation"]`` and truncations
set ``infos[i]["TimeLimit.truncated"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices
from torch import Tensor

from wmkit.agents.contexts import ClipContexts, ContextSource
from wmkit.agents.imagination import Imagination, RewardFn, TerminationFn
from wmkit.agents.spaces import action_space_from_spec, image_observation_space
from wmkit.core import WorldModel

__all__ = ["WorldModelVecEnv"]


class WorldModelVecEnv(VecEnv):
    """A world model as ``num_envs`` batched environments (arguments as ``WorldModelEnv``).

    Args:
        world_model: any ``wmkit.core.WorldModel``.
        contexts: start clips (``ContextSource`` or a video tensor ``[N, T0, C, H, W]``).
        num_envs: environments stepped together.
        reward_fn: ``(frame, action, next_frame) -> reward [B]``; default: the model's head.
        termination_fn: ``(frame, action, next_frame) -> bool [B]``; default: the model's
            done head, else only truncation.
        max_episode_steps: imagined steps before truncation.
        seed: seed of the first ``reset`` (``VecEnv.seed`` overrides it).
        device: where the model runs.
    """

    def __init__(
        self,
        world_model: WorldModel,
        contexts: ContextSource | Tensor,
        num_envs: int = 16,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        max_episode_steps: int = 64,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        if isinstance(contexts, Tensor):
            contexts = ClipContexts(contexts)
        self.core = Imagination(
            world_model, contexts, num_envs, reward_fn, termination_fn, max_episode_steps, device
        )
        self.render_mode = None
        c, h, w = contexts.frame_shape
        super().__init__(
            num_envs,
            image_observation_space(h, w, c),
            action_space_from_spec(world_model.action_spec),
        )
        self.rng = np.random.default_rng(seed)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:
            self.rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        return self.core.reset(self.rng)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("call step_async before step_wait")
        obs, reward, terminated, truncated = self.core.step(self._actions, self.rng)
        self._actions = None
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = obs[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if done.any():
            obs = self.core.reset_done(done, self.rng)
        return obs, reward, done, infos

    def close(self) -> None:
        pass

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]
