"""Imagination in a converted DIAMOND agent: the parity fixture's ``agent.pt`` goes through
``wmkit convert diamond``; its ``DIR/world`` (with the reward/end model) becomes a
``WorldModelEnv`` / ``WorldModelVecEnv`` whose rewards and terminations come from that model's
heads, and the ``DIR/policy`` agent acts in it, as DIAMOND trains its actor-critic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wmkit.agents import ClipContexts, WorldModelEnv, WorldModelVecEnv
from wmkit.agents.diamond_actor_critic import DiamondPolicy
from wmkit.core import load_pretrained
from wmkit.core.testing import needs_parity, parity_dir

PARITY = parity_dir("diamond")

pytestmark = needs_parity("diamond", "atari")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, ClipContexts]:
    """The converted fixture agent and context clips: the fixture's 5 recorded frames and 4
    actions per clip, in windows of DIAMOND's n = 4 frames (3 actions between them)."""
    pytest.importorskip("wmkit.diffusion_world", reason="the DIAMOND world model lives there")
    from wmkit.diffusion_world.convert_diamond import convert_diamond

    out = tmp_path_factory.mktemp("diamond")
    convert_diamond(PARITY / "atari" / "agent.pt", out)
    io = load_file(str(PARITY / "atari" / "io.safetensors"))
    return out, ClipContexts(io["rew_end.frames"], io["rew_end.act"], context_length=4)


@torch.no_grad()
def test_the_converted_agent_acts_in_its_world_model(converted) -> None:
    out, contexts = converted
    torch.set_num_threads(1)
    world = load_pretrained(out / "world")
    assert world.num_steps_conditioning == contexts.context_length == 4
    env = WorldModelEnv(world, contexts, max_episode_steps=3)

    def episode(seed: int) -> list[tuple[int, float, bool, bool]]:
        obs, _ = env.reset(seed=seed)
        policy = DiamondPolicy.from_pretrained(str(out / "policy"), seed=0)  # its own sampler
        steps = []
        for _ in range(3):
            assert env.observation_space.contains(obs) and obs.shape == (64, 64, 3)
            action = int(policy(obs[None])[0])
            assert env.action_space.contains(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            steps.append((action, reward, terminated, truncated))
            if terminated or truncated:
                break
        return steps

    first = episode(0)
    for _, reward, terminated, _ in first:
        assert reward in (-1.0, 0.0, 1.0)  # the reward head's sign classes
        assert isinstance(terminated, bool)
    assert first[-1][2] or first[-1][3]  # ends by the done head or at the horizon
    assert episode(0) == first  # reproducible under the env's seed, policy seed fixed


@torch.no_grad()
def test_vec_env_steps_the_batch_with_the_heads(converted) -> None:
    """Two imagined environments in one batch; rewards and terminations are the heads'; the
    policy zeroes the LSTM state of the environments that ended (DIAMOND's reset of dead
    environments) and keeps the others'."""
    out, contexts = converted
    torch.set_num_threads(1)
    world = load_pretrained(out / "world")
    venv = WorldModelVecEnv(world, contexts, num_envs=2, max_episode_steps=3, seed=0)
    policy = DiamondPolicy.from_pretrained(str(out / "policy"), greedy=True)
    obs = venv.reset()
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
    ended, mixed = np.zeros(2, bool), False
    for _ in range(3):
        venv.step_async(policy(obs))
        obs, rewards, dones, infos = venv.step_wait()
        assert set(rewards.tolist()) <= {-1.0, 0.0, 1.0} and dones.dtype == bool
        before = policy.state
        policy.reset(dones)
        for i, done in enumerate(dones):
            if done:
                assert "terminal_observation" in infos[i]
                assert not policy.state[0][i].any() and not policy.state[1][i].any()
            else:
                assert torch.equal(policy.state[0][i], before[0][i])
        ended |= dones
        mixed |= bool(dones.any() and not dones.all())
    assert ended.all()  # by the done head or at the horizon (3)
    assert mixed  # under this seed the done head ends one environment early: a partial reset
    with pytest.raises(ValueError, match=r"done must be bool \[B\] = \[2\]"):
        policy.reset(np.ones(3, bool))
