"""Benchmark wmkit-latent-action on recorded data: latent actions learned from frames only.

For each dataset (Crafter: 17 discrete actions; Meta-World: 4-D continuous arm), after a
fixed training budget on the training episodes' frames:

- probe accuracy (discrete) / R² (continuous) of linear and MLP probes from latent actions to
  the true actions of held-out episodes, against a random-latent baseline and a true-action
  ceiling (a supervised inverse-dynamics model: the same encoder trained on the true actions
  with the same budget);
- codebook perplexity (of 8) and code usage;
- forward-decoder PSNR on held-out transitions with the inferred latent actions, with latent
  actions shuffled across transitions, and of copying frame t;
- IGOR's nearest-neighbour predictiveness curve (png) and a demo-imitation video (mp4: the
  demo's next frames | the same latent actions applied from another episode's first frame);
- training and inference throughput (median and spread over timed steps after warm-up).

    uv run python tools/bench_latent_action.py --quick
    uv run python tools/bench_latent_action.py --crafter data/crafter-64 \
        --metaworld data/metaworld-64

Datasets are recorded with ``wmkit record`` when the paths do not exist.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmkit.core import frame_grid, to_float_video, write_video
from wmkit.core.data.episode_store import EpisodeStore
from wmkit.latent_action import (
    LatentActionAutoencoder,
    imitate,
    latent_features,
    plot_predictiveness,
    probe_latent_actions,
    psnr,
)


def _record(env: str, path: Path, episodes: int, steps: int) -> None:
    cmd = ["wmkit", "record", env, "--episodes", str(episodes), "--max-steps", str(steps),
           "--out", str(path), "--resolution", "64", "--no-progress"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "wmkit.core.cli", *cmd[1:]], check=True)


def _pairs(store: EpisodeStore, episodes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    frames, actions = [], []
    for ep in episodes:
        n = store.episode_length(ep)
        video = to_float_video(store.read_frames(ep, 0, n))[0]  # [T, C, H, W]
        frames.append(torch.stack([video[:-1], video[1:]], 1))  # [T - 1, 2, C, H, W]
        actions.append(torch.from_numpy(store.read_steps(ep, 0, n - 1)["actions"]))
    return torch.cat(frames), torch.cat(actions)


def _timed_train(step_fn, steps: int, warmup: int = 5) -> list[float]:
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step_fn(i)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def train_lam(model, pairs, steps, batch, lr, seed, device):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()

    def step(_: int) -> None:
        b = pairs[torch.randint(0, len(pairs), (batch,), generator=gen)].to(device)
        out = model(b)
        loss = F.mse_loss(out.predicted, b[:, 1:]) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return _timed_train(step, steps)


def supervised_ceiling(
    size, pairs, actions, test_pairs, test_actions, spec, steps, batch, lr, seed, device
) -> float:
    """The same encoder trained on the true actions (inverse dynamics with labels)."""
    torch.manual_seed(seed)
    idm = LatentActionAutoencoder.from_size(size, quantizer="none").to(device)
    feats = latent_features(spec, actions[:1])
    sizes = list(spec.token_vocab_sizes) if spec.is_discrete else [feats.shape[1]]
    dim = idm.bottleneck.num_tokens * idm.bottleneck.token_dim
    head = torch.nn.Linear(dim, sum(sizes)).to(device)
    opt = torch.optim.AdamW([*idm.encoder.parameters(), *head.parameters()], lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def predict(b: torch.Tensor) -> torch.Tensor:
        return head(idm.encode(b.to(device)).flatten(2)[:, 0])  # [N, out]

    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (batch,), generator=gen)
        out = predict(pairs[idx])
        if spec.is_discrete:
            ids = spec.to_tokens(actions[idx]).to(device)
            parts = out.split(sizes, 1)
            loss = sum(F.cross_entropy(p, ids[:, k]) for k, p in enumerate(parts))
        else:
            loss = F.mse_loss(out, latent_features(spec, actions[idx]).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = torch.cat([predict(c) for c in test_pairs.split(256)]).cpu()
    if spec.is_discrete:
        pred = torch.stack([p.argmax(1) for p in out.split(sizes, 1)], 1)
        return float((pred == spec.to_tokens(test_actions)).float().mean())
    target = latent_features(spec, test_actions)
    sse = (out - target).pow(2).sum(0)
    sst = (target - target.mean(0)).pow(2).sum(0)
    return float((1 - sse / sst).mean())


@torch.no_grad()
def decoder_psnr(model, test_pairs, device) -> dict[str, float]:
    out = {"inferred": [], "shuffled": [], "copy_last": []}
    for chunk in test_pairs.split(256):
        b = chunk.to(device)
        latents = model.infer(b)[:, 0]  # [N, ...]
        pred = model.apply(b[:, 0], latents)
        perm = torch.roll(torch.arange(len(b)), 1)
        shuffled = model.apply(b[:, 0], latents[perm])
        target = b[:, 1:]
        out["inferred"].append(psnr(pred[:, None], target).item() * len(b))
        out["shuffled"].append(psnr(shuffled[:, None], target).item() * len(b))
        out["copy_last"].append(psnr(b[:, :1], target).item() * len(b))
    return {k: sum(v) / len(test_pairs) for k, v in out.items()}


def bench_env(name: str, path: Path, args, results_dir: Path) -> dict:
    store = EpisodeStore(path)
    n = len(store)
    n_test = max(2, n // 4)
    train_eps, test_eps = list(range(n - n_test)), list(range(n - n_test, n))
    pairs, actions = _pairs(store, train_eps)
    test_pairs, test_actions = _pairs(store, test_eps)
    spec = store.action_spec
    runs = []
    for rep in range(args.repeats):
        seed = args.seed + rep
        torch.manual_seed(seed)
        model = LatentActionAutoencoder.from_size(args.size).to(args.device)
        times = train_lam(model, pairs, args.steps, args.batch, args.lr, seed, args.device)
        model.eval()
        t0 = time.perf_counter()
        report = probe_latent_actions(
            model, store, train_eps, test_eps, steps=300, seed=seed, device=args.device
        )
        probe_s = time.perf_counter() - t0
        ceiling = supervised_ceiling(
            args.size,
            pairs,
            actions,
            test_pairs,
            test_actions,
            spec,
            args.steps,
            args.batch,
            args.lr,
            seed,
            args.device,
        )
        runs.append({
            "seed": seed,
            "train_step_s_median": statistics.median(times),
            "train_step_s_iqr": float(np.subtract(*np.percentile(times, [75, 25]))),
            "train_transitions_per_s": args.batch / statistics.median(times),
            "probe_s": probe_s,
            "probes": {k: v.test_score for k, v in report.probes.items()},
            "chance": report.probes["linear"].chance,
            "ceiling_supervised_idm": ceiling,
            "perplexity": report.perplexity,
            "psnr": decoder_psnr(model, test_pairs, args.device),
            "nn_curve": {k: {str(j): v for j, v in c.items()} for k, c in report.curves.items()},
        })  # fmt: skip
        if rep == 0:
            plot_predictiveness(
                report.curves,
                str(results_dir / f"latent_action_{name}_nn.png"),
                report.metric,
                title=f"{name}: latent-action predictiveness",
            )
            demo_len = min(16, store.episode_length(test_eps[0]))
            demo = to_float_video(store.read_frames(test_eps[0], 0, demo_len)).to(args.device)
            scene = to_float_video(store.read_frames(test_eps[1], 0, 1)).to(args.device)
            result = imitate(model, demo, scene)
            grid = frame_grid([demo[:, 1:].cpu(), result.frames.cpu()])
            write_video(results_dir / f"latent_action_{name}_imitation.mp4", grid, fps=4)
    return {"dataset": str(path), "episodes": n, "test_episodes": n_test,
            "train_transitions": len(pairs), "test_transitions": len(test_pairs),
            "metric": "accuracy" if spec.is_discrete else "r2", "runs": runs}  # fmt: skip


def _med(runs: list[dict], key) -> str:
    values = [key(r) for r in runs]
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3f}"
    return f"{med:.3f} ± {(max(values) - min(values)) / 2:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crafter", default="data/crafter-64")
    parser.add_argument("--metaworld", default="data/metaworld-64")
    parser.add_argument("--episodes", type=int, default=24, help="episodes to record if missing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--repeats", type=int, default=1, help="trainings with different seeds")
    parser.add_argument("--steps", type=int, default=600, help="training steps (the budget)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="300 steps, 1 repeat")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = min(args.steps, 300), 1
    if args.threads:
        torch.set_num_threads(args.threads)
    results_dir = Path(args.out)
    results_dir.mkdir(parents=True, exist_ok=True)
    envs = {"crafter": Path(args.crafter), "metaworld": Path(args.metaworld)}
    for env, path in envs.items():
        if not (path / "manifest.json").is_file():
            _record(env, path, args.episodes, 120)
    hardware = (
        torch.cuda.get_device_name() if args.device.startswith("cuda")
        else f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )  # fmt: skip
    results = {"config": vars(args), "hardware": hardware, "torch": torch.__version__}
    for env, path in envs.items():
        results[env] = bench_env(env, path, args, results_dir)
    (results_dir / "bench_latent_action.json").write_text(json.dumps(results, indent=2))

    print(f"\nwmkit-latent-action, size {args.size}, {args.steps} steps x batch {args.batch}, "
          f"{args.repeats} repeat(s); {hardware}\n")  # fmt: skip
    print(
        "| dataset | metric | linear probe | MLP probe | random latents (lin / MLP) | "
        "majority | supervised IDM ceiling | perplexity (of 8) | PSNR inferred | "
        "PSNR shuffled | PSNR copy-last | train transitions/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for env in envs:
        r, runs = results[env], results[env]["runs"]
        print(
            f"| {env} ({r['train_transitions']} train / {r['test_transitions']} test) | "
            f"{r['metric']} | {_med(runs, lambda x: x['probes']['linear'])} | "
            f"{_med(runs, lambda x: x['probes']['mlp'])} | "
            f"{_med(runs, lambda x: x['probes']['random_linear'])} / "
            f"{_med(runs, lambda x: x['probes']['random_mlp'])} | "
            f"{_med(runs, lambda x: x['chance'])} | "
            f"{_med(runs, lambda x: x['ceiling_supervised_idm'])} | "
            f"{_med(runs, lambda x: x['perplexity'] or 0.0)} | "
            f"{_med(runs, lambda x: x['psnr']['inferred'])} | "
            f"{_med(runs, lambda x: x['psnr']['shuffled'])} | "
            f"{_med(runs, lambda x: x['psnr']['copy_last'])} | "
            f"{_med(runs, lambda x: x['train_transitions_per_s'])} |"
        )
    print(
        f"\nraw numbers: {results_dir / 'bench_latent_action.json'}; plots and imitation "
        f"videos: {results_dir}/latent_action_*_nn.png, latent_action_*_imitation.mp4"
    )


if __name__ == "__main__":
    main()
