"""The Meta-World part of the agents benchmark: MBPO vs SAC on reach-v3 from pixels, and
Real2Sim policy ranking in the learned world model (see ``tools/bench_agents.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from wmkit.agents import (
    MBPO,
    OpenLoopPolicy,
    RandomPolicy,
    evaluate_policies,
)
from wmkit.core.testing import ToyWorldModel
from wmkit.core.testing.toy_lit import ToyWorldModelModule

MW_SETTINGS = {
    # real steps = warmup + iterations * steps_per_iter (equal for both learners); one real
    # step = 2 simulator steps (action repeat)
    "quick": {"resolution": 32, "max_steps": 50, "warmup": 200, "iterations": 3,
              "steps_per_iter": 200, "init_model_steps": 60, "model_steps_per_iter": 10,
              "rollout_batch": 64, "rollouts_per_iter": 1, "seeds": [0], "eval_episodes": 1,
              "real2sim_seeds": 2, "hidden": 16},
    "full": {"resolution": 32, "max_steps": 50, "warmup": 500, "iterations": 10,
             "steps_per_iter": 250, "init_model_steps": 200, "model_steps_per_iter": 15,
             "rollout_batch": 128, "rollouts_per_iter": 1, "seeds": [0, 1], "eval_episodes": 1,
             "real2sim_seeds": 3, "hidden": 24},
}  # fmt: skip
MW_SUCCESS = 10.0 - 1e-6  # reach-v3 reward is 10·in_place; in_place == 1 iff within 5 cm


class FixedGoalMetaWorld:
    """Meta-World ``task`` with one of its 50 goal variants and action repeat (``RealEnv``).

    With one goal every episode starts in the same state, so a policy that sees only a
    32x32 frame (the goal is a few pixels) can solve it. Each step repeats the action for
    ``action_repeat`` simulator steps (as iVideoGPT's Meta-World runs do) and returns the mean
    of their rewards. ``success_threshold``: reach-v3's reward is ``10 * in_place`` and
    ``in_place == 1`` exactly when the hand is within 5 cm of the goal (Meta-World's own
    success test), so a step reaches the threshold when the hand stays within 5 cm for all
    its simulator steps. Goal variant 2 is the one of the first eight that Meta-World's
    scripted expert reaches soonest.
    """

    success_threshold = MW_SUCCESS

    def __init__(
        self,
        resolution: int,
        task: str = "reach-v3",
        max_steps: int = 50,
        goal: int = 2,
        camera: str = "corner",
        action_repeat: int = 2,
    ) -> None:
        from wmkit.core.data.envs import make_env

        self.env = make_env("metaworld", resolution, task=task, camera=camera,
                            max_steps=min(500, max_steps * action_repeat))  # fmt: skip
        self.env._tasks = self.env._tasks[goal : goal + 1]  # one goal variant
        self.task, self.action_spec, self.max_steps = task, self.env.action_spec, max_steps
        self.goal, self.action_repeat = goal, action_repeat

    @property
    def observation(self) -> np.ndarray:
        return self.env.observation

    def reset(self, seed: int) -> np.ndarray:
        return self.env.reset(seed)

    def step(self, action) -> tuple[np.ndarray, float, bool]:
        rewards = []
        for _ in range(self.action_repeat):
            frame, r, done = self.env.step(action)
            rewards.append(r)
            if done:
                break
        return frame, float(np.mean(rewards)), done


def _expert_actions(env: FixedGoalMetaWorld, noise: float, seed: int) -> np.ndarray:
    """Meta-World's scripted expert (``metaworld.policies``) run closed loop from the fixed
    start, plus Gaussian noise of std ``noise``; returns its action sequence."""
    import warnings

    import metaworld.policies

    expert = metaworld.policies.ENV_POLICY_MAP[env.task]()
    rng = np.random.default_rng(seed)
    env.reset(0)
    actions = []
    for _ in range(env.max_steps):  # closed loop at the wrapper step (action repeated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asarray(expert.get_action(env.observation), np.float64)
        a = np.clip(a + rng.normal(0, noise, a.shape), -1, 1).astype(np.float32)
        actions.append(a)
        env.step(a)
    return np.stack(actions)


class _SnapshotPolicy:
    """A frozen copy of an SB3 agent's policy (deterministic actions)."""

    def __init__(self, agent) -> None:
        import copy

        self.policy = copy.deepcopy(agent.policy).eval()

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.policy.predict(obs, deterministic=True)[0])


def bench_metaworld(device: str, quick: bool, task: str = "reach-v3") -> dict:
    """MBPO vs SAC-only (same SAC, seeds, real steps, eval episodes), then Real2Sim."""
    s = MW_SETTINGS["quick" if quick else "full"]
    sac_kwargs = {"buffer_size": 20000, "learning_rate": 3e-4,
                  "policy_kwargs": {"net_arch": [256, 256]}}  # fmt: skip
    runs: dict[str, list[dict]] = {"mbpo": [], "sac_real_only": []}
    snapshots: dict[str, object] = {}
    kept = None
    t0 = time.perf_counter()
    for seed in s["seeds"]:
        for name, imagine in (("mbpo", True), ("sac_real_only", False)):
            torch.manual_seed(seed)
            env = FixedGoalMetaWorld(s["resolution"], task, s["max_steps"])
            module = ToyWorldModelModule(ToyWorldModel(env.action_spec, hidden=s["hidden"]),
                                         lr=1e-3, reward_weight=0.1)  # fmt: skip
            mbpo = MBPO(
                module, env, use_imagination=imagine, algorithm_kwargs=sac_kwargs,
                warmup_steps=s["warmup"], init_model_steps=s["init_model_steps"],
                model_steps_per_iter=s["model_steps_per_iter"],
                real_steps_per_iter=s["steps_per_iter"], rollout_batch=s["rollout_batch"],
                rollout_horizon=5, rollouts_per_iter=s["rollouts_per_iter"], real_ratio=0.5,
                model_batch_size=16, model_clip_length=4, gradient_steps=1, batch_size=128,
                eval_episodes=s["eval_episodes"], seed=seed, device=device,
            )  # fmt: skip
            merged: dict[str, list] = {}
            for it in range(s["iterations"]):
                rec = mbpo.run(1).to_dict()
                for k, v in rec.items():
                    merged.setdefault(k, []).extend(v)
                if seed == s["seeds"][0] and it == max(0, s["iterations"] // 3 - 1):
                    snapshots[f"{name}@{mbpo.real_steps}"] = _SnapshotPolicy(mbpo.agent)
                print(f"  [{time.perf_counter() - t0:.0f}s] {name} seed {seed} "
                      f"step {mbpo.real_steps}: return {merged['eval_return'][-1]:.1f} "
                      f"success {merged['eval_success'][-1]:.2f}", flush=True)  # fmt: skip
            runs[name].append(merged)
            if seed == s["seeds"][0]:
                snapshots[f"{name}@{mbpo.real_steps}"] = _SnapshotPolicy(mbpo.agent)
                if imagine:
                    kept = mbpo
    train_s = time.perf_counter() - t0

    # Real2Sim in the world model MBPO fine-tuned (seed 0), reward from its reward head.
    env = kept.real_env  # type: ignore[union-attr]
    policies = {
        "scripted_expert": OpenLoopPolicy(_expert_actions(env, 0.0, 0)),
        "expert_noise_0.5": OpenLoopPolicy(_expert_actions(env, 0.5, 1)),
        **snapshots,
        "zero_action": OpenLoopPolicy(np.zeros((1, 4), np.float32)),
        "random": RandomPolicy(env.action_spec, seed=3),
    }
    t1 = time.perf_counter()
    rep = evaluate_policies(policies, env, kept.world_model, range(s["real2sim_seeds"]))  # type: ignore[union-attr]
    real2sim_s = time.perf_counter() - t1
    return {
        "task": task, "goal_variant": 0, "camera": "corner", "settings": s,
        "sac_kwargs": sac_kwargs, "world_model": f"ToyWorldModel(hidden={s['hidden']})",
        "reward_in_imagination": "world model's reward head (ToyWorldModel.reward_head)",
        "runs": runs, "real2sim": rep.to_dict(), "train_seconds": train_s,
        "real2sim_seconds": real2sim_s,
    }  # fmt: skip


def _mean_curve(runs: list[dict], key: str) -> list[float]:
    return [float(np.mean(v)) for v in zip(*(r[key] for r in runs))]


def print_metaworld(mw: dict) -> None:
    s = mw["settings"]
    n = len(s["seeds"])
    print(f"\n### Meta-World {mw['task']} (one goal, {s['resolution']}x{s['resolution']} corner "
          f"camera, {s['max_steps']}-step episodes): MBPO vs SAC on real data only\n")  # fmt: skip
    print(f"Mean over seeds {s['seeds']}; {s['eval_episodes']} deterministic eval episode(s) "
          "per point; return = sum of Meta-World rewards (max 500); success = hand within 5 cm "
          "at some step.\n")  # fmt: skip
    print("| real steps | MBPO return | MBPO success | SAC-only return | SAC-only success |")
    print("|---:|---:|---:|---:|---:|")
    a, b = mw["runs"]["mbpo"], mw["runs"]["sac_real_only"]
    steps = a[0]["real_steps"]
    ar, asu = _mean_curve(a, "eval_return"), _mean_curve(a, "eval_success")
    br, bsu = _mean_curve(b, "eval_return"), _mean_curve(b, "eval_success")
    for i, k in enumerate(steps):
        print(f"| {k} | {ar[i]:.1f} | {asu[i]:.2f} | {br[i]:.1f} | {bsu[i]:.2f} |")
    print(f"\n(training both, {n} seed(s): {mw['train_seconds']:.0f} s; imagined transitions "
          f"per MBPO run: {a[0]['imagined'][-1]})")  # fmt: skip
    rep = mw["real2sim"]
    print(f"\n### Real2Sim on Meta-World {mw['task']} ({mw['world_model']} fine-tuned by MBPO, "
          f"reward head; {s['real2sim_seeds']} starts)\n")  # fmt: skip
    print(f"Pearson {rep['pearson']:.2f}, Spearman {rep['spearman']:.2f}, pairwise accuracy "
          f"{rep['pairwise_accuracy']:.2f} ({mw['real2sim_seconds']:.0f} s)\n")  # fmt: skip
    print("| policy | real return | real success | model return | model success |")
    print("|---|---:|---:|---:|---:|")
    for p in rep["policies"]:
        print(f"| {p['name']} | {p['real_return']:.1f} | {p['real_success']:.2f} | "
              f"{p['model_return']:.1f} | {p['model_success']:.2f} |")  # fmt: skip


def plot_metaworld(mw: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is optional
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, runs in mw["runs"].items():
        for j, r in enumerate(runs):
            ax.plot(r["real_steps"], r["eval_return"], marker="o", alpha=0.8,
                    color="C0" if name == "mbpo" else "C1",
                    label=name if j == 0 else None)  # fmt: skip
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(f"eval return ({mw['settings']['max_steps']} steps)")
    ax.set_title(f"Meta-World {mw['task']}: MBPO vs SAC on real data")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
