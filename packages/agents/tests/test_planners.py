"""CEM / MPPI in a scripted world with known dynamics: planning reaches what chance does not."""

import numpy as np
import pytest
import torch

from wmkit.agents import (
    CEMPlanner,
    GoalImageObjective,
    MPPIPlanner,
    PlannerPolicy,
    RandomPolicy,
    RewardObjective,
)
from wmkit.agents.spaces import obs_to_frames
from wmkit.agents.testing import SquareGoalEnv, SquareGoalReward, SquareGoalWorldModel
from wmkit.core import to_float_video


def _success_rate(env, policy, seeds):
    hits = []
    for s in seeds:
        frame = env.reset(s)
        policy.reset()
        best = -1.0
        for _ in range(env.max_steps):
            frame, reward, done = env.step(policy(frame[None])[0])
            best = max(best, reward)
            if done:
                break
        hits.append(best >= env.success_threshold)
    return float(np.mean(hits))


def test_cem_reaches_goal_random_actions_do_not():
    """From the far corner the goal needs 12 of 12 moves right/down: CEM plans it, chance
    (5 discrete moves) never gets there."""
    env = SquareGoalEnv(16, continuous=False, max_steps=12, start="corner")
    wm = SquareGoalWorldModel(16, continuous=False)
    planner = CEMPlanner(wm, RewardObjective(), horizon=12, population=64, iterations=4,
                         elites=8, seed=0)  # fmt: skip
    assert _success_rate(env, PlannerPolicy(planner, replan_every=4), range(3)) == 1.0
    assert _success_rate(env, RandomPolicy(env.action_spec, seed=0), range(20)) == 0.0


def test_mppi_continuous_with_frame_reward():
    """MPPI on continuous actions, scored by a reward read off the generated frames."""
    env = SquareGoalEnv(16, continuous=True, max_steps=10, start="corner")
    wm = SquareGoalWorldModel(16, continuous=True, predict_reward=False)
    planner = MPPIPlanner(wm, RewardObjective(reward_fn=SquareGoalReward(16)), horizon=8,
                          population=128, iterations=4, temperature=0.02, seed=0)  # fmt: skip
    assert _success_rate(env, PlannerPolicy(planner, replan_every=2), range(2)) == 1.0
    assert _success_rate(env, RandomPolicy(env.action_spec, seed=0), range(20)) == 0.0


def test_goal_image_objective_plans_towards_the_goal_image():
    env = SquareGoalEnv(16, continuous=False, max_steps=12, start="corner")
    start = env.reset(0)
    env._pos[:] = 6  # the goal image: the square at (6, 6)
    goal = to_float_video(env._frame()[None])[0, 0]  # [C, H, W]
    wm = SquareGoalWorldModel(16, continuous=False)
    planner = CEMPlanner(wm, GoalImageObjective(goal, blur=9), horizon=8, population=64,
                         iterations=4, seed=0)  # fmt: skip
    plan = planner.plan(obs_to_frames(start[None])[:, None])
    final = wm.rollout(obs_to_frames(start[None])[:, None], plan.actions).frames[0, -1]
    assert torch.allclose(final, goal, atol=1e-5)
    assert (plan.history[1:] >= plan.history[:-1]).all()  # best score never gets worse


def test_plan_is_deterministic_under_seed_and_batched():
    wm = SquareGoalWorldModel(16, continuous=True)
    env = SquareGoalEnv(16, continuous=True)
    ctx = obs_to_frames(np.stack([env.reset(s) for s in range(3)]))[:, None]  # [3, 1, C, H, W]
    plans = [MPPIPlanner(wm, RewardObjective(), horizon=4, population=16, iterations=2,
                         seed=7).plan(ctx) for _ in range(2)]  # fmt: skip
    assert torch.equal(plans[0].actions, plans[1].actions)
    assert plans[0].actions.shape == (3, 4, 2) and plans[0].score.shape == (3,)


def test_planner_errors_name_the_argument():
    wm = SquareGoalWorldModel(16)
    with pytest.raises(ValueError, match="elites"):
        CEMPlanner(wm, RewardObjective(), population=4, elites=5)
    with pytest.raises(ValueError, match="horizon"):
        CEMPlanner(wm, RewardObjective(), horizon=0)
    with pytest.raises(ValueError, match="temperature"):
        MPPIPlanner(wm, RewardObjective(), temperature=0)
    with pytest.raises(TypeError, match="WorldModel"):
        CEMPlanner(object(), RewardObjective())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replan_every"):
        PlannerPolicy(CEMPlanner(wm, RewardObjective(), horizon=2), replan_every=3)
    planner = CEMPlanner(SquareGoalWorldModel(16, predict_reward=False), RewardObjective(),
                         horizon=2, population=4, elites=2)  # fmt: skip
    with pytest.raises(ValueError, match="no reward"):
        planner.plan(torch.zeros(1, 1, 3, 16, 16))
