"""Real2Sim policy evaluation orders policies as the real environment does (or not, for a
wrong model)."""

import math

import numpy as np
import pytest

from wmkit.agents import OpenLoopPolicy, RandomPolicy, evaluate_policies, pairwise_agreement
from wmkit.agents.testing import SquareGoalEnv, SquareGoalExpert, SquareGoalWorldModel


def _policies(env):
    return {
        "expert": SquareGoalExpert(16, continuous=False),
        "noisy_expert": SquareGoalExpert(16, continuous=False, random_prob=0.5, seed=1),
        "random": RandomPolicy(env.action_spec, seed=2),
    }


def test_faithful_world_model_ranks_policies_like_the_real_env():
    env = SquareGoalEnv(16, continuous=False, max_steps=12)
    report = evaluate_policies(_policies(env), env, SquareGoalWorldModel(16, continuous=False),
                               seeds=range(4))  # fmt: skip
    by_name = {p.name: p for p in report.policies}
    assert by_name["expert"].real_return > by_name["random"].real_return
    assert by_name["expert"].model_return > by_name["random"].model_return
    assert by_name["expert"].real_success == by_name["expert"].model_success == 1.0
    # the expert is deterministic and the model exact: identical returns
    assert by_name["expert"].model_return == pytest.approx(by_name["expert"].real_return, abs=1e-4)
    assert report.pairwise_accuracy == 1.0 and report.spearman == pytest.approx(1.0)


def test_wrong_world_model_misranks_policies():
    """A model whose moves go the wrong way rewards the expert least."""
    env = SquareGoalEnv(16, continuous=False, max_steps=12)
    wrong = SquareGoalWorldModel(16, continuous=False, action_gain=-1.0)
    report = evaluate_policies(_policies(env), env, wrong, seeds=range(4))
    assert report.pairwise_accuracy < 0.5 and report.spearman < 0


def test_context_frames_come_from_the_real_env():
    env = SquareGoalEnv(16, continuous=False, max_steps=6)
    report = evaluate_policies({"expert": SquareGoalExpert(16, continuous=False)}, env,
                               SquareGoalWorldModel(16, continuous=False), seeds=[0, 1],
                               context_length=3)  # fmt: skip
    score = report.policies[0]
    assert score.model_return == pytest.approx(score.real_return, abs=1e-4)
    assert math.isnan(report.pearson)  # one policy: no correlation


def test_pairwise_agreement_and_errors():
    assert pairwise_agreement([1, 2, 3], [10, 20, 30]) == 1.0
    assert pairwise_agreement([1, 2, 3], [30, 20, 10]) == 0.0
    assert math.isnan(pairwise_agreement([1, 1], [1, 2]))
    env = SquareGoalEnv(16, continuous=False)
    with pytest.raises(ValueError, match="policies"):
        evaluate_policies({}, env, SquareGoalWorldModel(16, continuous=False), seeds=[0])
    with pytest.raises(ValueError, match="mismatched"):
        evaluate_policies({"r": RandomPolicy(env.action_spec)}, env,
                          SquareGoalWorldModel(16, continuous=True), seeds=[0])  # fmt: skip


def test_open_loop_replay_of_an_expert_scores_the_same_in_real_env_and_exact_model():
    """An expert's recorded actions replayed open loop act identically in the real env and in
    an exact world model (batched over starts), and beat standing still."""
    env = SquareGoalEnv(16, continuous=True, max_steps=12, start="corner")
    expert, frame, actions = SquareGoalExpert(16), env.reset(0), []
    for _ in range(env.max_steps):
        actions.append(expert(frame[None])[0])
        frame, _, done = env.step(actions[-1])
        if done:
            break
    policies = {"replayed_expert": OpenLoopPolicy(np.stack(actions)),
                "still": OpenLoopPolicy(np.zeros((1, 2), np.float32))}  # fmt: skip
    report = evaluate_policies(policies, env, SquareGoalWorldModel(16), seeds=[0, 0])
    replay, still = report.policies
    assert replay.model_return == pytest.approx(replay.real_return, abs=1e-4)
    assert replay.real_success == replay.model_success == 1.0
    assert replay.real_return > still.real_return and report.pairwise_accuracy == 1.0


def test_open_loop_policy_repeats_and_rewinds():
    policy = OpenLoopPolicy(np.eye(3, dtype=np.float32)[:2])
    assert policy(np.zeros((4, 8, 8, 3))).shape == (4, 3)
    np.testing.assert_array_equal(policy(np.zeros((1, 8, 8, 3))), [[0, 1, 0]])
    np.testing.assert_array_equal(policy(np.zeros((1, 8, 8, 3))), [[0, 1, 0]])  # holds last
    policy.reset()
    np.testing.assert_array_equal(policy(np.zeros((1, 8, 8, 3))), [[1, 0, 0]])
    with pytest.raises(ValueError, match="non-empty"):
        OpenLoopPolicy(np.zeros((0, 3)))
