"""Benchmark wmkit.agents: imagined env steps/s, CEM vs random, MBPO vs model-free, Real2Sim.

    uv run --no-sync python tools/bench_agents.py --quick          # everything, small
    uv run --no-sync python tools/bench_agents.py --metaworld      # only Meta-World, ~20 min CPU
    uv run --no-sync python tools/bench_agents.py --device cuda --repeats 5

Toy part (scripted square world): imagined steps/s, CEM planning, MBPO vs SAC, Real2Sim.

Meta-World part (``--metaworld`` runs only it, ``--no-metaworld`` skips it): reach-v3 from
pixels (32x32 corner camera, one goal variant so that every episode starts alike, action
repeat 2, 50-step episodes). (1) MBPO: real env + a ``ToyWorldModel`` fine-tuned through its
LightningModule on the collected real transitions + imagined 5-step branches (reward from the
model's reward head) into half of every SAC batch, and (2) the same SB3 SAC (same
hyperparameters, seeds, real steps, gradient steps and evaluation episodes) on real data only.
Then Real2Sim: policies of clearly different quality (Meta-World's scripted expert replayed
open loop, the expert with noise, SAC snapshots at two points of both runs, zero and random
actions) run in the real env and in MBPO's world model from the same starts, with the
Pearson/Spearman correlation of their returns. The iVideoGPT-sized reference config
(``packages/agents/configs/mbpo_metaworld_reach.yaml``: 64x64, CnnPolicy, 100k steps) takes
hours on a GPU and is not run here.

Prints Markdown tables and writes raw numbers to ``results/bench_agents.json`` (``--metaworld``
alone updates its ``metaworld`` entry), curves to ``results/bench_agents_mbpo.png`` (toy) and
``results/bench_agents_metaworld.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from agents_bench.metaworld import bench_metaworld, plot_metaworld, print_metaworld
from bench_common import sync

from wmkit.agents import (
    MBPO,
    CEMPlanner,
    ClipContexts,
    PlannerPolicy,
    RandomPolicy,
    RewardObjective,
    SB3Policy,
    WorldModelEnv,
    WorldModelVecEnv,
    evaluate_policies,
)
from wmkit.agents.testing import (
    SquareGoalEnv,
    SquareGoalExpert,
    SquareGoalReward,
    SquareGoalWorldModel,
)
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyWorldModel, moving_squares
from wmkit.core.testing.toy_lit import ToyWorldModelModule

SIZES = {"tiny": {"resolution": 16, "hidden": 32}, "small": {"resolution": 32, "hidden": 64}}


def bench_steps(device: str, size: str, repeats: int, quick: bool) -> list[dict]:
    cfg = SIZES[size]
    eps = moving_squares(8, 8, cfg["resolution"])
    contexts = ClipContexts(to_float_video(eps.frames), context_length=1)
    wm = ToyWorldModel(ActionSpec.discrete(5), hidden=cfg["hidden"]).to(device).eval()
    steps = 50 if quick else 200
    rows = []
    for num_envs in (1, 16, 64, 256):
        if num_envs == 1:
            env = WorldModelEnv(wm, contexts, max_episode_steps=10**9, device=device)
            env.reset(seed=0)

            def run(n=steps, env=env):
                for _ in range(n):
                    env.step(1)
        else:
            venv = WorldModelVecEnv(wm, contexts, num_envs, max_episode_steps=10**9, seed=0,
                                    device=device)  # fmt: skip
            venv.reset()
            acts = np.ones(num_envs, np.int64)

            def run(n=steps, venv=venv, acts=acts):
                for _ in range(n):
                    venv.step(acts)

        run(5)  # warm-up
        rates = []
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            run()
            sync(device)
            rates.append(steps * num_envs / (time.perf_counter() - t))
        rows.append({"num_envs": num_envs, "steps_per_s": statistics.median(rates),
                     "min": min(rates), "max": max(rates)})  # fmt: skip
    return rows


def _success(env, policy, seeds) -> float:
    hits = []
    for s in seeds:
        frame, best = env.reset(s), -1.0
        policy.reset()
        for _ in range(env.max_steps):
            frame, r, done = env.step(policy(frame[None])[0])
            best = max(best, r)
            if done:
                break
        hits.append(best >= env.success_threshold)
    return float(np.mean(hits))


def bench_cem(quick: bool) -> dict:
    env = SquareGoalEnv(16, continuous=False, max_steps=12, start="corner")
    wm = SquareGoalWorldModel(16, continuous=False)
    seeds = range(5 if quick else 20)
    planner = CEMPlanner(wm, RewardObjective(), horizon=12, population=64, iterations=4, elites=8)
    t = time.perf_counter()
    cem = _success(env, PlannerPolicy(planner, replan_every=4), seeds)
    cem_s = time.perf_counter() - t
    rand = _success(env, RandomPolicy(env.action_spec, seed=0), range(200))
    return {"episodes": len(seeds), "cem_success": cem, "random_success": rand,
            "random_episodes": 200, "cem_seconds": cem_s}  # fmt: skip


def bench_mbpo(device: str, iterations: int, seed: int) -> tuple[dict, MBPO]:
    out = {}
    keep = None
    for name, imagine in (("mbpo", True), ("sac_real_only", False)):
        torch.manual_seed(seed)
        env = SquareGoalEnv(16, continuous=True, max_steps=16)
        module = ToyWorldModelModule(ToyWorldModel(env.action_spec, hidden=16), lr=3e-3)
        mbpo = MBPO(
            module, env, reward_fn=SquareGoalReward(16), use_imagination=imagine,
            algorithm_kwargs={"buffer_size": 20000, "policy_kwargs": {"net_arch": [64, 64]}},
            warmup_steps=200, init_model_steps=100, model_steps_per_iter=20,
            real_steps_per_iter=100, rollout_batch=64, rollout_horizon=5, rollouts_per_iter=2,
            gradient_steps=2, batch_size=64, eval_episodes=4, seed=seed, device=device,
        )  # fmt: skip
        out[name] = mbpo.run(iterations).to_dict()
        if imagine:
            keep = mbpo
    return out, keep  # type: ignore[return-value]


def bench_real2sim(mbpo: MBPO, quick: bool) -> dict:
    env = SquareGoalEnv(16, continuous=True, max_steps=16)
    policies = {
        "expert": SquareGoalExpert(16),
        "expert_30%_random": SquareGoalExpert(16, random_prob=0.3, seed=1),
        "expert_70%_random": SquareGoalExpert(16, random_prob=0.7, seed=2),
        "random": RandomPolicy(env.action_spec, seed=3),
        "mbpo_sac": SB3Policy(mbpo.agent),
    }
    seeds = range(4 if quick else 16)
    learned = evaluate_policies(policies, env, mbpo.world_model, seeds,
                                reward_fn=SquareGoalReward(16))  # fmt: skip
    exact = evaluate_policies(policies, env, SquareGoalWorldModel(16), seeds)
    return {"learned_toy_world_model": learned.to_dict(), "scripted_exact_model": exact.to_dict()}


# ----------------------------------------------------------------------------------------
# Meta-World: MBPO vs SAC on real data only, and Real2Sim, on reach-v3 from pixels.


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer steps, episodes, iterations")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--mbpo-iterations", type=int, default=None)
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--metaworld", action="store_true", help="only the Meta-World part")
    part.add_argument("--no-metaworld", action="store_true", help="skip the Meta-World part")
    ap.add_argument("--out", default="results/bench_agents.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hardware = (
        torch.cuda.get_device_name() if args.device.startswith("cuda")
        else f"CPU: {platform.processor() or platform.machine()}, {args.threads} torch thread(s)"
    )  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # --metaworld alone updates the "metaworld" entry of an existing results file
    raw = json.loads(out.read_text()) if args.metaworld and out.exists() else {}
    raw.update({"hardware": hardware, "args": vars(args)})
    if not args.metaworld:
        raw.update(bench_toy(args, hardware, out))
    if not args.no_metaworld:
        mw = bench_metaworld(args.device, args.quick)
        print_metaworld(mw)
        raw["metaworld"] = mw
        plot_metaworld(mw, out.with_name("bench_agents_metaworld.png"))
    out.write_text(json.dumps(raw, indent=2))
    print(f"\nraw numbers: {out}")


def bench_toy(args: argparse.Namespace, hardware: str, out: Path) -> dict:
    """The toy-world sections: env steps/s, CEM, MBPO vs SAC and Real2Sim (square world)."""
    iters = args.mbpo_iterations or (8 if args.quick else 15)
    steps = bench_steps(args.device, args.size, args.repeats, args.quick)
    print(f"\n### Imagined env steps/s (ToyWorldModel {args.size}, {hardware})\n")
    print("| envs | env steps/s (median) | min | max |\n|---:|---:|---:|---:|")
    for r in steps:
        print(f"| {r['num_envs']} | {r['steps_per_s']:.0f} | {r['min']:.0f} | {r['max']:.0f} |")

    cem = bench_cem(args.quick)
    print("\n### Planning on the scripted square world (start corner, 12 steps)\n")
    print("| policy | success | episodes |\n|---|---:|---:|")
    print(f"| CEM (H=12, pop 64, 4 iters, replan every 4) | {cem['cem_success']:.2f} | "
          f"{cem['episodes']} |")  # fmt: skip
    print(f"| uniform random | {cem['random_success']:.2f} | {cem['random_episodes']} |")

    mbpo, trained = bench_mbpo(args.device, iters, seed=0)
    print("\n### MBPO vs SAC on real data only (square world 16x16, continuous)\n")
    print("| real steps | MBPO return | MBPO success | SAC-only return | SAC-only success |")
    print("|---:|---:|---:|---:|---:|")
    a, b = mbpo["mbpo"], mbpo["sac_real_only"]
    for i, n in enumerate(a["real_steps"]):
        print(f"| {n} | {a['eval_return'][i]:.2f} | {a['eval_success'][i]:.2f} | "
              f"{b['eval_return'][i]:.2f} | {b['eval_success'][i]:.2f} |")  # fmt: skip

    r2s = bench_real2sim(trained, args.quick)
    print("\n### Real2Sim: policy ranking, real env vs world model\n")
    print("| world model | Pearson | Spearman | pairwise accuracy |\n|---|---:|---:|---:|")
    for name, rep in r2s.items():
        print(f"| {name} | {rep['pearson']:.2f} | {rep['spearman']:.2f} | "
              f"{rep['pairwise_accuracy']:.2f} |")  # fmt: skip
    print("\n| policy | real return | learned-model return | exact-model return |")
    print("|---|---:|---:|---:|")
    for p, q in zip(r2s["learned_toy_world_model"]["policies"],
                    r2s["scripted_exact_model"]["policies"]):  # fmt: skip
        print(f"| {p['name']} | {p['real_return']:.2f} | {p['model_return']:.2f} | "
              f"{q['model_return']:.2f} |")  # fmt: skip

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, rec in mbpo.items():
            ax.plot(rec["real_steps"], rec["eval_return"], marker="o", label=name)
        ax.set_xlabel("real environment steps")
        ax.set_ylabel("eval return (16 steps)")
        ax.set_title("MBPO vs SAC on real data, square world")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out.with_name("bench_agents_mbpo.png"), dpi=120)
    except ImportError:  # matplotlib is optional
        pass
    return {"steps": steps, "cem": cem, "mbpo": mbpo, "real2sim": r2s}


if __name__ == "__main__":
    main()
