"""Model-based policy optimisation in any world model (Janner et al., 2019; iVideoGPT §4.4).

The loop follows iVideoGPT's Meta-World MBPO (``thuml/iVideoGPT``,
``mbrl/train_metaworld_mbpo.py``):

1. collect real transitions with the current policy (uniformly random during ``warmup_steps``),
   storing them both in the learner's replay buffer and as episodes (:class:`EpisodeReplay`);
2. after warm-up, train the world model on real clips for ``init_model_steps``; then fine-tune
   it for ``model_steps_per_iter`` steps every iteration, *through its own LightningModule*
   (``trainer.fit(module, loader)`` on batches with the standard keys), so any wmkit world
   model trains exactly as its stage does;
3. branch ``rollout_batch`` imagined rollouts of ``rollout_horizon`` steps from real context
   clips with the current policy and put them in the imagined half of a
   :class:`MixedReplayBuffer`;
4. train an off-the-shelf stable-baselines3 actor-critic (SAC or TD3) on batches mixing real
   and imagined transitions (``real_ratio``), ``gradient_steps`` updates per real step.

Where we differ from iVideoGPT: the learner is SB3's SAC on single frames (iVideoGPT uses
DrQ-v2 with 3 stacked frames, action repeat 2 and n-step returns); rewards come from the
model's reward head or a user ``reward_fn`` of the generated frames; a fresh Lightning
``Trainer`` runs each fine-tuning round, with the optimiser state carried over between
rounds. ``use_imagination=False`` runs the same learner on real data only, the baseline at
equal real-environment steps.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.logger import Logger

from wmkit.agents.episode_replay import EpisodeReplay
from wmkit.agents.imagination import Imagination, RewardFn, TerminationFn
from wmkit.agents.mixed_buffer import MixedReplayBuffer
from wmkit.agents.policies import SB3Policy
from wmkit.agents.real_env import RealEnv, RealGymEnv, make_real_env
from wmkit.agents.rewards import FrameReward
from wmkit.agents.world_model_rounds import CarryOptimizerState, fit_round, world_model_net

__all__ = ["MBPO", "MBPOResult"]

_ALGORITHMS = ("sac", "td3")


@dataclass
class MBPOResult:
    """Per-iteration records: real steps so far, mean evaluation return (and success rate if
    the env defines ``success_threshold``), last world-model loss, imagined transitions so
    far, and wall-clock seconds."""

    real_steps: list[int] = field(default_factory=list)
    eval_return: list[float] = field(default_factory=list)
    eval_success: list[float] = field(default_factory=list)
    model_loss: list[float] = field(default_factory=list)
    imagined: list[int] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


def _check_at_least_one(**counts: int) -> None:
    """Raise a ValueError naming the first of ``counts`` (argument name → value) below 1."""
    for name, value in counts.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


class MBPO:
    """MBPO with any world model trained through its LightningModule and an SB3 learner.

    Args:
        world_model: the world model's LightningModule (e.g.
            ``wmkit.core.testing.toy_lit.ToyWorldModelModule``); its ``model_attr`` attribute
            must be a ``wmkit.core.WorldModel`` and its ``training_step`` must accept batches
            with ``frames``/``actions``/``rewards``/``dones``.
        env: real environment: a ``RealEnv``, a core env name (``"metaworld"``) or
            ``"module:Class"``.
        env_kwargs: options of the env (``task``, ``camera``, ``max_steps``, ...).
        resolution: frame size of the real env.
        algorithm: ``"sac"`` or ``"td3"`` (off-policy, continuous actions).
        algorithm_kwargs: extra arguments of the SB3 algorithm (``learning_rate``,
            ``policy_kwargs``, ``buffer_size``, ...).
        policy: SB3 policy name (``"MlpPolicy"`` or ``"CnnPolicy"``, needs >= 36x36 frames).
        reward_fn: reward of imagined transitions from frames; ``None``: the model's head.
        termination_fn: termination of imagined transitions; ``None``: the model's head or never.
        use_imagination: ``False`` trains the learner on real transitions only (baseline).
        context_length: real frames (``T0``) each imagined rollout starts from.
        rollout_horizon: imagined steps per branched rollout.
        rollout_batch: branched rollouts per generation.
        rollouts_per_iter: generations per iteration.
        real_ratio: fraction of each learner batch drawn from real transitions.
        warmup_steps: real steps with random actions before learning starts.
        init_model_steps: world-model training steps after warm-up.
        model_steps_per_iter: world-model fine-tuning steps per iteration.
        model_batch_size: clips per world-model batch.
        model_clip_length: frames per world-model training clip.
        real_steps_per_iter: real steps per iteration.
        gradient_steps: learner updates per real step.
        batch_size: learner batch size.
        eval_episodes: deterministic evaluation episodes in the real env per iteration.
        model_attr: attribute of ``world_model`` holding the ``WorldModel`` network.
        seed: seed of the learner, the env episodes and the imagination.
        device: where the learner and the world model run (``"cpu"``, ``"cuda"``).
    """

    def __init__(
        self,
        world_model: L.LightningModule,
        env: str | RealEnv = "metaworld",
        env_kwargs: dict[str, Any] | None = None,
        resolution: int = 64,
        algorithm: str = "sac",
        algorithm_kwargs: dict[str, Any] | None = None,
        policy: str = "MlpPolicy",
        reward_fn: FrameReward | RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        use_imagination: bool = True,
        context_length: int = 1,
        rollout_horizon: int = 5,
        rollout_batch: int = 32,
        rollouts_per_iter: int = 1,
        real_ratio: float = 0.5,
        warmup_steps: int = 200,
        init_model_steps: int = 100,
        model_steps_per_iter: int = 20,
        model_batch_size: int = 16,
        model_clip_length: int = 4,
        real_steps_per_iter: int = 100,
        gradient_steps: int = 1,
        batch_size: int = 64,
        eval_episodes: int = 2,
        model_attr: str = "model",
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        net = world_model_net(world_model, model_attr)
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}; got {algorithm!r}")
        self.real_env = make_real_env(env, resolution, **(env_kwargs or {}))
        if self.real_env.action_spec.kind != "continuous":
            raise ValueError(
                f"MBPO here drives SAC/TD3, which need continuous actions; the env has "
                f"{self.real_env.action_spec.describe()}"
            )
        net.action_spec.check_compatible(self.real_env.action_spec, "world model vs env actions")
        _check_at_least_one(
            context_length=context_length,
            rollout_horizon=rollout_horizon,
            rollout_batch=rollout_batch,
            model_clip_length=model_clip_length,
            real_steps_per_iter=real_steps_per_iter,
            batch_size=batch_size,
        )
        if model_clip_length < 2:
            raise ValueError(f"model_clip_length must be >= 2; got {model_clip_length}")
        self.module, self.world_model = world_model, net
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.use_imagination = use_imagination
        self.context_length, self.rollout_horizon = int(context_length), int(rollout_horizon)
        self.rollout_batch, self.rollouts_per_iter = int(rollout_batch), int(rollouts_per_iter)
        self.warmup_steps, self.init_model_steps = int(warmup_steps), int(init_model_steps)
        self.model_steps_per_iter, self.model_batch_size = (
            int(model_steps_per_iter),
            int(model_batch_size),
        )
        self.model_clip_length = int(model_clip_length)
        self.real_steps_per_iter, self.gradient_steps = (
            int(real_steps_per_iter),
            int(gradient_steps),
        )
        self.batch_size, self.eval_episodes = int(batch_size), int(eval_episodes)
        self.seed, self.device = int(seed), device

        self.gym_env = RealGymEnv(self.real_env)
        self.gym_env.action_space.seed(seed)
        self.agent = self._make_agent(algorithm, policy, real_ratio, algorithm_kwargs or {})
        self.buffer: MixedReplayBuffer = self.agent.replay_buffer  # type: ignore[assignment]
        self.real = EpisodeReplay(self.real_env.action_spec)
        self.rng = np.random.default_rng(seed)
        self._optim_carry = CarryOptimizerState()
        self.real_steps = 0
        self._episode = 0
        self._model_trained = False
        self._obs = self._new_episode()

    # ----------------------------------------------------------------------------------
    def _make_agent(self, algorithm: str, policy: str, real_ratio: float, kwargs: dict) -> Any:
        from stable_baselines3 import SAC, TD3
        from stable_baselines3.common.noise import NormalActionNoise

        cls = {"sac": SAC, "td3": TD3}[algorithm]
        extra: dict[str, Any] = {}
        if algorithm == "td3" and "action_noise" not in kwargs:
            d = int(np.prod(self.gym_env.action_space.shape))
            extra["action_noise"] = NormalActionNoise(np.zeros(d), 0.1 * np.ones(d))
        agent = cls(
            policy,
            self.gym_env,
            learning_starts=0,
            batch_size=self.batch_size,
            replay_buffer_class=MixedReplayBuffer,
            replay_buffer_kwargs={"real_ratio": real_ratio},
            seed=self.seed,
            device=self.device,
            verbose=0,
            **{**extra, **kwargs},
        )
        agent.set_logger(Logger(folder=None, output_formats=[]))
        return agent

    def _buffer_obs(self, obs: np.ndarray) -> np.ndarray:
        """Env observations ``[B, H, W, C]`` → the learner's layout (SB3 transposes images)."""
        shape = self.agent.observation_space.shape
        return obs if obs.shape[1:] == shape else obs.transpose(0, 3, 1, 2)

    def _buffer_action(self, action: np.ndarray) -> np.ndarray:
        if isinstance(self.agent.action_space, spaces.Box):
            return self.agent.policy.scale_action(action)
        return action

    def _act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Learner actions for ``obs [B, H, W, C]`` (with TD3's exploration noise)."""
        action, _ = self.agent.predict(obs, deterministic=False)
        noise = getattr(self.agent, "action_noise", None)
        if explore and noise is not None:
            scaled = np.clip(self.agent.policy.scale_action(action) + noise(), -1, 1)
            action = self.agent.policy.unscale_action(scaled)
        return np.asarray(action, np.float32)

    def _episode_seed(self, episode: int) -> int:
        return self.seed * 100_003 + episode

    def _new_episode(self) -> np.ndarray:
        obs, _ = self.gym_env.reset(seed=self._episode_seed(self._episode))
        self._episode += 1
        self.real.start_episode(obs)
        return obs

    # ----------------------------------------------------------------------------------
    def collect(self, steps: int, learn: bool = True) -> None:
        """Take ``steps`` real steps; during warm-up actions are random and nothing trains."""
        for _ in range(steps):
            warm = self.real_steps < self.warmup_steps
            if warm:
                action = np.asarray(self.gym_env.action_space.sample(), np.float32)
            else:
                action = self._act(self._obs[None], explore=True)[0]
            frame, reward, terminated, truncated, _ = self.gym_env.step(action)
            self.buffer.add(
                self._buffer_obs(self._obs[None]), self._buffer_obs(frame[None]),
                self._buffer_action(action[None]), np.array([reward], np.float32),
                np.array([terminated or truncated], np.float32),
                [{"TimeLimit.truncated": truncated and not terminated}],
            )  # fmt: skip
            # the world model learns terminations; a time limit only ends the episode
            self.real.add(action, reward, terminated, frame)
            self.real_steps += 1
            self._obs = self._new_episode() if terminated or truncated else frame
            if learn and not warm:
                self.agent.train(gradient_steps=self.gradient_steps, batch_size=self.batch_size)

    def train_world_model(self, steps: int) -> float:
        """Fine-tune the world model for ``steps`` batches of real clips through its
        LightningModule; returns the last logged training loss (NaN if none was logged)."""
        loader = self.real.dataloader(self.model_clip_length, self.model_batch_size, steps,
                                      seed=int(self.rng.integers(2**31)))  # fmt: skip
        return fit_round(self.module, loader, self.device, self._optim_carry)

    @torch.no_grad()
    def imagine(self) -> int:
        """Branch ``rollout_batch`` rollouts from real contexts into the imagined buffer;
        returns how many transitions were added."""
        contexts = self.real.contexts(self.context_length, max_clips=4096, rng=self.rng)
        core = Imagination(self.world_model, contexts, self.rollout_batch, self.reward_fn,
                           self.termination_fn, self.rollout_horizon, self.device)  # fmt: skip
        obs = core.reset(self.rng)
        alive = np.ones(self.rollout_batch, bool)
        added = 0
        for _ in range(self.rollout_horizon):
            action = self._act(obs, explore=True)
            nxt, reward, terminated, _ = core.step(action, self.rng)
            self.buffer.add_imagined(
                self._buffer_obs(obs[alive]), self._buffer_obs(nxt[alive]),
                self._buffer_action(action[alive]), reward[alive], terminated[alive],
            )  # fmt: skip
            added += int(alive.sum())
            alive &= ~terminated
            if not alive.any():
                break
            obs = nxt
        return added

    def evaluate(self, episodes: int | None = None) -> tuple[float, float]:
        """Mean return and success rate of the deterministic policy in the real env, on
        fixed evaluation seeds (success needs ``env.success_threshold``; else NaN)."""
        policy = SB3Policy(self.agent, deterministic=True)
        threshold = getattr(self.real_env, "success_threshold", None)
        returns, successes = [], []
        for i in range(self.eval_episodes if episodes is None else episodes):
            env = RealGymEnv(self.real_env)
            obs, _ = env.reset(seed=10_000_000 + i)
            total, best, done = 0.0, -float("inf"), False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs[None])[0])
                total, best, done = total + r, max(best, r), term or trunc
            returns.append(total)
            successes.append(float(best >= threshold) if threshold is not None else float("nan"))
        self._obs = self._new_episode()  # the evaluation reset the shared env
        return float(np.mean(returns)), float(np.mean(successes))

    def run(
        self,
        iterations: int,
        checkpoint: str | Path | None = None,
        result: MBPOResult | None = None,
        checkpoint_every: int = 1,
    ) -> MBPOResult:
        """Warm up (first call), then ``iterations`` rounds of model fine-tuning, imagination,
        real collection with learner updates, and evaluation.

        ``checkpoint``: write the run's state there after every ``checkpoint_every``-th
        iteration and the last (:func:`~wmkit.agents.mbpo_checkpoint.save_checkpoint`), so a
        killed run can go on from it. ``result``: the records to go on from (those
        :func:`~wmkit.agents.mbpo_checkpoint.load_checkpoint` returns); the new iterations
        are appended to them.
        """
        from wmkit.agents.mbpo_checkpoint import save_checkpoint

        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1; got {checkpoint_every}")
        result = result if result is not None else MBPOResult()
        start = time.perf_counter() - (result.wall_s[-1] if result.wall_s else 0.0)
        if self.real_steps < self.warmup_steps:
            self.collect(self.warmup_steps - self.real_steps, learn=False)
        loss = result.model_loss[-1] if result.model_loss else float("nan")
        if self.use_imagination and not self._model_trained:
            loss = self.train_world_model(self.init_model_steps)
            self._model_trained = True
        for i in range(int(iterations)):
            if self.use_imagination:
                if self.model_steps_per_iter > 0:
                    loss = self.train_world_model(self.model_steps_per_iter)
                for _ in range(self.rollouts_per_iter):
                    self.imagine()
            self.collect(self.real_steps_per_iter)
            ret, success = self.evaluate()
            result.real_steps.append(self.real_steps)
            result.eval_return.append(ret)
            result.eval_success.append(success)
            result.model_loss.append(loss)
            result.imagined.append(self.buffer.imagined_added)
            result.wall_s.append(time.perf_counter() - start)
            last = i == int(iterations) - 1
            if checkpoint is not None and (len(result.real_steps) % checkpoint_every == 0 or last):
                save_checkpoint(self, result, checkpoint)
        return result
