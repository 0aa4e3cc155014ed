"""MBPO checkpoints: everything a run needs to go on as if it had never stopped.

A checkpoint is written after an iteration (:meth:`MBPO.run` with ``checkpoint=``), when the
real env has just been reset to a new episode from a known seed, so the simulator itself need
not be saved. It holds the world model's LightningModule and its carried optimiser state, the
SB3 learner (policy, optimisers, entropy coefficient, update counter), both halves of the
replay buffer, the real episodes, the counters, the records so far and every random generator
(MBPO's own, the action space's, and torch/NumPy/Python's global ones, which SB3's buffer
sampling, SAC's actions and the world model's training draw from). A run resumed from it ends
as an uninterrupted run does, weight for weight.

The file is one ``torch.save`` of tensors, numbers, strings and lists, written to a temporary
file and moved into place (``os.replace``), so a run killed while writing leaves the previous
checkpoint whole; it is read with ``torch.load(weights_only=True)``, which unpickles no code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import recursive_getattr

from wmkit.core.random_state import get_random_state, set_random_state

if TYPE_CHECKING:
    from wmkit.agents.mbpo import MBPO, MBPOResult

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT = 1
_BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    n = buffer.size()
    state: dict[str, Any] = {"pos": int(buffer.pos), "full": bool(buffer.full)}
    for name in _BUFFER_FIELDS:
        array = getattr(buffer, name, None)
        if array is not None:
            state[name] = torch.from_numpy(np.ascontiguousarray(array[:n]))
    return state


def _load_buffer(buffer: ReplayBuffer, state: dict[str, Any], where: str) -> None:
    for name in _BUFFER_FIELDS:
        if name not in state:
            continue
        array = getattr(buffer, name)
        saved = state[name].numpy()
        if saved.shape[0] > array.shape[0] or saved.shape[1:] != array.shape[1:]:
            raise ValueError(
                f"the checkpoint's {where} {name} have shape {tuple(saved.shape)}; this run's "
                f"buffer holds {tuple(array.shape)}: resume with the settings it was made with"
            )
        array[: saved.shape[0]] = saved
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])


def _generator_state(generator: np.random.Generator) -> dict[str, Any]:
    # 128-bit PCG64 words as strings: the state stays plain data of any width
    state = generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _set_generator(generator: np.random.Generator, state: dict[str, Any]) -> None:
    generator.bit_generator.state = {
        "bit_generator": state["bit_generator"],
        "state": {k: int(v) for k, v in state["state"].items()},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }


def save_checkpoint(mbpo: MBPO, result: MBPOResult, path: str | Path) -> Path:
    """Write ``mbpo``'s state and the records so far (``result``) to ``path``, atomically;
    returns the path. Call it between iterations (see the module docstring)."""
    path = Path(path)
    agent = mbpo.agent
    _, variables = agent._get_torch_save_params()
    state = {
        "format": FORMAT,
        "result": result.to_dict(),
        "counters": {
            "real_steps": mbpo.real_steps,
            "episode": mbpo._episode,
            "model_trained": mbpo._model_trained,
            "n_updates": int(agent._n_updates),
        },
        "world_model": mbpo.module.state_dict(),
        "world_optimizers": mbpo._optim_carry.states,
        "agent": agent.get_parameters(),
        "agent_variables": {name: recursive_getattr(agent, name).detach() for name in variables},
        "buffer": _buffer_state(mbpo.buffer),
        "imagined": _buffer_state(mbpo.buffer.imagined),
        "imagined_added": int(mbpo.buffer.imagined_added),
        "episodes": [
            {
                "frames": torch.from_numpy(np.stack(ep["frames"])),
                "actions": [torch.from_numpy(np.asarray(a)) for a in ep["actions"]],
                "rewards": list(ep["rewards"]),
                "dones": list(ep["dones"]),
            }
            for ep in mbpo.real.episodes
        ],
        "rng": {
            "mbpo": _generator_state(mbpo.rng),
            "action_space": _generator_state(mbpo.gym_env.action_space.np_random),
            "global": get_random_state(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(mbpo: MBPO, path: str | Path) -> MBPOResult:
    """Restore ``mbpo`` (built with the settings the checkpoint was made with) from ``path``;
    returns the records of the iterations it had run."""
    from wmkit.agents.mbpo import MBPOResult

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MBPO checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable MBPO checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an MBPO checkpoint of format {FORMAT}")
    mbpo.module.load_state_dict(state["world_model"])
    mbpo._optim_carry.states = state["world_optimizers"]
    agent = mbpo.agent
    agent.set_parameters(state["agent"], exact_match=True, device=agent.device)
    for name, value in state["agent_variables"].items():
        with torch.no_grad():
            recursive_getattr(agent, name).copy_(value)
    counters = state["counters"]
    agent._n_updates = int(counters["n_updates"])
    _load_buffer(mbpo.buffer, state["buffer"], "real transitions")
    _load_buffer(mbpo.buffer.imagined, state["imagined"], "imagined transitions")
    mbpo.buffer.imagined_added = int(state["imagined_added"])
    mbpo.real.episodes = [
        {
            "frames": list(ep["frames"].numpy()),
            "actions": [a.numpy() for a in ep["actions"]],
            "rewards": list(ep["rewards"]),
            "dones": list(ep["dones"]),
        }
        for ep in state["episodes"]
    ]
    mbpo.real_steps, mbpo._episode = int(counters["real_steps"]), int(counters["episode"])
    mbpo._model_trained = bool(counters["model_trained"])
    # the env as the checkpoint left it: just reset to its latest episode, whose first frame
    # the real episodes already hold
    mbpo._obs, _ = mbpo.gym_env.reset(seed=mbpo._episode_seed(mbpo._episode - 1))
    _set_generator(mbpo.rng, state["rng"]["mbpo"])
    _set_generator(mbpo.gym_env.action_space.np_random, state["rng"]["action_space"])
    set_random_state(state["rng"]["global"])
    return MBPOResult(**state["result"])
