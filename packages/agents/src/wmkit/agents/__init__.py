"""wmkit.agents: train, plan and evaluate policies inside any world model.

- :class:`WorldModelEnv` / :class:`WorldModelVecEnv`: any ``wmkit.core.WorldModel`` as a
  gymnasium env / a batched SB3 ``VecEnv``, started from real context clips.
- :class:`MBPO`: model-based RL (real collection, world-model fine-tuning through its
  LightningModule, branched imagined rollouts into an SB3 learner's replay buffer).
- :class:`CEMPlanner` / :class:`MPPIPlanner` + :class:`PlannerPolicy`: planning over action
  sequences by predicted reward or distance to a goal image.
- :func:`evaluate_policies`: Real2Sim policy evaluation (real vs world-model ranking).
- :class:`DiamondPolicy`: DIAMOND's released actor-critic (:class:`DiamondActorCritic`) as a
  policy.
"""

from wmkit.agents.contexts import ClipContexts, ContextSource
from wmkit.agents.diamond_actor_critic import DiamondActorCritic, DiamondPolicy
from wmkit.agents.episode_replay import EpisodeReplay
from wmkit.agents.imagination import Imagination, RewardFn, TerminationFn
from wmkit.agents.mbpo import MBPO, MBPOResult
from wmkit.agents.mixed_buffer import MixedReplayBuffer
from wmkit.agents.objectives import GoalImageObjective, Objective, RewardObjective
from wmkit.agents.planner_policy import PlannerPolicy
from wmkit.agents.planners import CEMPlanner, MPPIPlanner, PlanResult, SamplingPlanner
from wmkit.agents.policies import OpenLoopPolicy, Policy, RandomPolicy, SB3Policy
from wmkit.agents.real2sim import PolicyScore, Real2SimReport, evaluate_policies, pairwise_agreement
from wmkit.agents.real_env import RealEnv, RealGymEnv, make_real_env
from wmkit.agents.rewards import FrameReward, GoalImageReward
from wmkit.agents.spaces import action_space_from_spec
from wmkit.agents.world_model_env import WorldModelEnv
from wmkit.agents.world_model_vec_env import WorldModelVecEnv

__all__ = [
    "MBPO",
    "CEMPlanner",
    "ClipContexts",
    "ContextSource",
    "DiamondActorCritic",
    "DiamondPolicy",
    "EpisodeReplay",
    "FrameReward",
    "GoalImageObjective",
    "GoalImageReward",
    "Imagination",
    "MBPOResult",
    "MPPIPlanner",
    "MixedReplayBuffer",
    "Objective",
    "OpenLoopPolicy",
    "PlanResult",
    "PlannerPolicy",
    "Policy",
    "PolicyScore",
    "RandomPolicy",
    "Real2SimReport",
    "RealEnv",
    "RealGymEnv",
    "RewardFn",
    "RewardObjective",
    "SB3Policy",
    "SamplingPlanner",
    "TerminationFn",
    "WorldModelEnv",
    "WorldModelVecEnv",
    "action_space_from_spec",
    "evaluate_policies",
    "make_real_env",
    "pairwise_agreement",
]
