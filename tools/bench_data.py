"""Benchmark wmkit's data path: simulator recording speed, disk use per frame format, and
clip-loader throughput.

    uv run python tools/bench_data.py [--quick] [--repeats 3] [--out results/bench_data.json]

Prints Markdown tables (with the hardware) and writes the raw numbers as JSON.
- record: env steps/s (policy + physics + render to the target resolution, resets excluded)
  and reset time per env and resolution, with each env's default exploration policy.
- disk: bytes per 1,000 frames of the same Crafter episodes stored as lossless video,
  CRF-23 video and compressed npz, plus write speed.
- loader: 16-frame clips/s through ``ClipDataset`` + a torch ``DataLoader``.
- sources: ms per random 8-frame clip (``ClipDataset``, one process) from the same Crafter
  episodes as a wmkit recording, as a LeRobot v2.1 dataset read in place (lossy h264 as
  published datasets are; window decoding with keyframe seeks, and with the per-episode frame
  cache) and after ``wmkit data import`` of that LeRobot dataset.

    uv run python tools/bench_data.py --sections sources   # only the LeRobot comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from wmkit.core.data.envs import make_env
from wmkit.core.data.episode_store import EpisodeStore, EpisodeWriter
from wmkit.core.data.record import episode_seed, make_policy, record_episode
from wmkit.eval import hardware_info

ENV_OPTIONS = {
    "crafter": ("crafter", {}),
    "metaworld": ("metaworld", {"task": "pick-place-v3"}),
    "vizdoom": ("vizdoom", {"scenario": "defend_the_center"}),
}
FORMATS = {"video lossless": ("video", None), "video crf 23": ("video", 23), "npz": ("npz", None)}


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float], digits: int = 0) -> str:
    spread = f" ({s['min']:.{digits}f}–{s['max']:.{digits}f})" if s["max"] > s["min"] else ""
    return f"{s['median']:.{digits}f}{spread}"


def _hardware() -> str:
    cpu = hardware_info("cpu")["cpu"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()}, load average {load:.1f} at start"


# ------------------------------------------------------------------------------- record
def bench_record(env_name: str, resolution: int, steps: int, repeats: int) -> dict[str, Any]:
    """Env steps/s (policy + simulation + rendering) and reset seconds, ``repeats`` times."""
    _, options = ENV_OPTIONS[env_name]
    env = make_env(env_name, resolution, **options)
    try:
        policy = make_policy(env, None)
        rates, resets = [], []
        for r in range(repeats + 1):  # repeat 0 is warm-up (first render, imports)
            seed = episode_seed(r, 0)
            rng = np.random.default_rng(seed)
            t = time.perf_counter()
            env.reset(seed)
            reset_s = time.perf_counter() - t
            policy.reset(rng)
            stepping, n, t_ep = 0.0, 0, 0
            t = time.perf_counter()
            while n < steps:
                _, _, done = env.step(policy.act(env.observation, rng))
                n, t_ep = n + 1, t_ep + 1
                if done or env.truncated or t_ep >= env.max_steps:
                    stepping += time.perf_counter() - t
                    env.reset(episode_seed(r, n))
                    policy.reset(rng)
                    t, t_ep = time.perf_counter(), 0
            stepping += time.perf_counter() - t
            if r:
                rates.append(n / stepping)
                resets.append(reset_s)
        return {"steps_per_s": _stats(rates), "reset_s": _stats(resets), "steps": steps,
                "policy": policy.describe(), "env_kwargs": env.env_kwargs}  # fmt: skip
    finally:
        env.close()


# --------------------------------------------------------------------------------- disk
def crafter_episodes(resolution: int, frames: int) -> list[dict[str, np.ndarray]]:
    """Crafter episodes (default sticky-random policy) totalling about ``frames`` frames."""
    env = make_env("crafter", resolution, max_steps=250)
    policy = make_policy(env, None)
    out, total, i = [], 0, 0
    while total < frames:
        ep = record_episode(env, policy, episode_seed(0, i))
        out.append(ep)
        total, i = total + len(ep["frames"]), i + 1
    env.close()
    return out


def write_dataset(root: Path, episodes: list[dict[str, np.ndarray]], fmt: str, crf: int | None,
                  spec: Any) -> float:  # fmt: skip
    """Write ``episodes`` as a dataset; returns seconds."""
    t = time.perf_counter()
    with EpisodeWriter(root, action_spec=spec, fps=10, env="crafter", frame_format=fmt,
                       crf=crf) as writer:  # fmt: skip
        for i, ep in enumerate(episodes):
            writer.add_episode(ep["frames"], ep["actions"], ep["rewards"], ep["dones"], seed=i)
    return time.perf_counter() - t


def bench_disk(root: Path, resolution: int, frames: int) -> dict[str, Any]:
    """Bytes per 1,000 frames (frame files only, and all files) for each frame format."""
    from wmkit.core.action_spec import ActionSpec

    episodes = crafter_episodes(resolution, frames)
    n = sum(len(e["frames"]) for e in episodes)
    raw = n * resolution * resolution * 3
    spec = ActionSpec.discrete(17)
    out: dict[str, Any] = {"frames": n, "episodes": len(episodes), "formats": {}}
    for label, (fmt, crf) in FORMATS.items():
        path = root / f"crafter{resolution}-{label.replace(' ', '-')}"
        seconds = write_dataset(path, episodes, fmt, crf, spec)
        files = [p for p in path.rglob("*") if p.is_file()]
        frame_bytes = sum(p.stat().st_size for p in files if p.suffix in (".mkv", ".npz"))
        total_bytes = sum(p.stat().st_size for p in files)
        out["formats"][label] = {
            "path": str(path),
            "bytes_per_1000_frames": frame_bytes / n * 1000,
            "all_bytes_per_1000_frames": total_bytes / n * 1000,
            "compression_ratio": raw / frame_bytes,
            "write_frames_per_s": n / seconds,
        }
    return out


# ------------------------------------------------------------------------------- loader
# bench_loader: the loader benchmark (ClipDataset + DataLoader); edit here to change it.
def bench_loader(root: Path, clip_length: int = 16, num_workers: int = 0, batch_size: int = 8,
                 clips: int = 256, repeats: int = 3) -> dict[str, Any]:  # fmt: skip
    """Clips/s of ``ClipDataset`` (random clips of ``clip_length`` frames) through a torch
    ``DataLoader`` with ``num_workers`` workers; the first batch (worker start) is excluded."""
    from torch.utils.data import DataLoader

    from wmkit.core.data.clip_dataset import ClipDataset

    store = EpisodeStore(root)
    rates = []
    for r in range(repeats):
        ds = ClipDataset(store, clip_length, mode="random", samples_per_epoch=clips + batch_size,
                         seed=r)  # fmt: skip
        loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
        it = iter(loader)
        next(it)
        t = time.perf_counter()
        n = sum(batch["frames"].shape[0] for batch in it)
        rates.append(n / (time.perf_counter() - t))
    return {
        "clips_per_s": _stats(rates),
        "frames_per_s": _stats([x * clip_length for x in rates]),
        "clip_length": clip_length,
        "num_workers": num_workers,
        "batch_size": batch_size,
    }


# ------------------------------------------------------------------------------ sources
def _clip_ms(source: Any, clip_length: int, clips: int, seed: int) -> tuple[float, float]:
    """Mean ms per random clip read through ``ClipDataset`` (frames and steps) from a fresh
    source: ``clips`` cold (the cost of filling any cache counted), then ``clips`` more warm
    (once every episode has been read: a later epoch)."""
    from wmkit.core.data.clip_dataset import ClipDataset

    ds = ClipDataset(source, clip_length, mode="random", samples_per_epoch=clips, seed=seed)
    t = time.perf_counter()
    for i in range(clips):
        ds[i]
    cold = (time.perf_counter() - t) / clips * 1e3
    for e in range(len(source)):  # touch every episode once
        source.read_frames(e, 0, 1)
    t = time.perf_counter()
    for i in range(clips, 2 * clips):
        ds[i]
    return cold, (time.perf_counter() - t) / clips * 1e3


def bench_sources(root: Path, episodes: int, length: int, resolution: int, clips: int,
                  repeats: int, clip_length: int = 8) -> dict[str, Any]:  # fmt: skip
    """ms per clip from one set of Crafter episodes stored four ways (see the module doc)."""
    from wmkit.core.action_spec import ActionSpec
    from wmkit.core.data.importer import import_dataset
    from wmkit.core.data.lerobot import LeRobotSource
    from wmkit.core.testing import write_lerobot_dataset

    env = make_env("crafter", resolution, max_steps=length)
    policy = make_policy(env, None)
    eps = [record_episode(env, policy, episode_seed(0, i)) for i in range(episodes)]
    env.close()
    spec = ActionSpec.discrete(17)
    write_dataset(root / "wmkit", eps, "npz", None, spec)
    lerobot_eps = [{"frames": e["frames"], "actions": e["actions"][:, None],
                    "rewards": e["rewards"]} for e in eps]  # fmt: skip
    write_lerobot_dataset(root / "lerobot", lerobot_eps, fps=10, lossless=False, crf=23, gop=None)
    t = time.perf_counter()
    import_dataset(root / "lerobot", root / "imported", progress=False)
    import_s = time.perf_counter() - t
    readers = {
        "wmkit recording (npz)": lambda: EpisodeStore(root / "wmkit"),
        "LeRobot in place, window decoding": lambda: LeRobotSource(root / "lerobot", cache_mb=0),
        "LeRobot in place, episode cache": lambda: LeRobotSource(root / "lerobot"),
        "LeRobot after wmkit data import (npz)": lambda: EpisodeStore(root / "imported"),
    }
    out: dict[str, Any] = {
        "episodes": episodes, "frames": sum(len(e["frames"]) for e in eps),
        "resolution": resolution, "clip_length": clip_length, "clips": clips,
        "import_s": import_s, "ms_per_clip": {},
    }  # fmt: skip
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker: time the data path, not thread contention
    try:
        for label, make in readers.items():
            _clip_ms(make(), clip_length, 8, seed=999)  # warm-up: imports, page cache
            times = [_clip_ms(make(), clip_length, clips, seed=r) for r in range(repeats)]
            out["ms_per_clip"][label] = {"cold": _stats([c for c, _ in times]),
                                         "warm": _stats([w for _, w in times])}  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return out


# --------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench_data.json")
    parser.add_argument("--quick", action="store_true", help="fewer steps/frames, 1 repeat")
    parser.add_argument("--steps", type=int, default=None, help="env steps per repeat")
    parser.add_argument("--sections", nargs="+", default=["record", "disk", "sources"],
                        choices=["record", "disk", "sources"],
                        help="what to measure (disk includes the loader)")  # fmt: skip
    parser.add_argument(
        "--source-episodes", type=int, default=48, help="sources: episodes of 121 frames at 64²"
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    steps = args.steps or (100 if args.quick else 300)
    disk_frames = 300 if args.quick else 1000
    results: dict[str, Any] = {"hardware": _hardware(), "repeats": repeats, "record": {},
                               "disk": {}, "loader": {}, "sources": {}}  # fmt: skip
    print(f"hardware: {results['hardware']}\n")
    if "record" in args.sections:
        _record_section(results, steps, repeats)
    if "disk" in args.sections:
        _disk_section(results, args, disk_frames, repeats)
    if "sources" in args.sections and find_spec("crafter") is not None:
        with tempfile.TemporaryDirectory(prefix="wmkit-bench-sources-") as tmp:
            eps = 8 if args.quick else args.source_episodes
            r = bench_sources(Path(tmp), eps, 121, 64, clips=64 if args.quick else 200,
                              repeats=repeats)  # fmt: skip
        results["sources"] = r
        print(f"### Clip reads: the same {r['episodes']} Crafter episodes ({r['frames']} frames "
              f"at 64²), random {r['clip_length']}-frame clips, one process, 1 torch thread; "
              f"cold: the first {r['clips']} clips of a fresh reader, warm: {r['clips']} more "
              "after every episode was read once\n")  # fmt: skip
        rows = ["| stored as | ms per clip, cold | ms per clip, warm |", "|---|---|---|"]
        rows += [f"| {k} | {_fmt(v['cold'], 1)} | {_fmt(v['warm'], 1)} |"
                 for k, v in r["ms_per_clip"].items()]  # fmt: skip
        print("\n".join(rows) + "\n")
        print(f"`wmkit data import` of the LeRobot dataset took {r['import_s']:.1f} s\n")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def _record_section(results: dict[str, Any], steps: int, repeats: int) -> None:

    rows = ["| env | resolution | steps/s | reset (s) | policy |", "|---|---|---|---|---|"]
    for env_name, (module, _) in ENV_OPTIONS.items():
        if find_spec(module) is None:
            print(f"skipping {env_name}: {module} is not installed")
            continue
        for res in (64, 128):
            r = bench_record(env_name, res, steps, repeats)
            results["record"][f"{env_name}@{res}"] = r
            opts = ", ".join(f"{k}={v}" for k, v in r["env_kwargs"].items() if k != "max_steps")
            rows.append(
                f"| {env_name} {opts} | {res}² | {_fmt(r['steps_per_s'])} | "
                f"{_fmt(r['reset_s'], 3)} | {r['policy']['name']} |"
            )
    print("### Recording (policy + simulation + render; resets excluded)\n")
    print("\n".join(rows) + "\n")


def _disk_section(results: dict[str, Any], args: Any, disk_frames: int, repeats: int) -> None:
    if find_spec("crafter") is not None:
        with tempfile.TemporaryDirectory(prefix="wmkit-bench-data-") as tmp:
            rows = ["| resolution | format | KB / 1,000 frames | ratio vs raw | write frames/s |",
                    "|---|---|---|---|---|"]  # fmt: skip
            loader_rows = [
                "| resolution | format | workers | clips/s (16 frames, batch 8) | frames/s |",
                "|---|---|---|---|---|",
            ]
            for res in (64, 128):
                d = bench_disk(Path(tmp), res, disk_frames)
                results["disk"][str(res)] = d
                for label, f in d["formats"].items():
                    rows.append(
                        f"| {res}² | {label} | {f['bytes_per_1000_frames'] / 1e3:.0f} | "
                        f"{f['compression_ratio']:.1f}x | {f['write_frames_per_s']:.0f} |"
                    )
                for label in ("video lossless", "npz"):
                    for workers in (0, 2):
                        path = Path(d["formats"][label]["path"])
                        lr = bench_loader(path, 16, workers, clips=64 if args.quick else 256,
                                          repeats=repeats)  # fmt: skip
                        results["loader"][f"{res}/{label}/w{workers}"] = lr
                        loader_rows.append(
                            f"| {res}² | {label} | {workers} | {_fmt(lr['clips_per_s'])} | "
                            f"{_fmt(lr['frames_per_s'])} |"
                        )
            n = results["disk"]["64"]["frames"]
            print(f"### Disk: the same Crafter episodes ({n} frames at 64²) per frame format\n")
            print("\n".join(rows) + "\n")
            print("### Loader: ClipDataset random 16-frame clips via torch DataLoader\n")
            print("\n".join(loader_rows) + "\n")
            for d in results["disk"].values():
                for f in d["formats"].values():
                    f.pop("path")


if __name__ == "__main__":
    main()
