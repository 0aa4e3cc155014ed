"""``wmkit data``: ``info DIR`` summarises an episode dataset (sizes, actions, rewards),
writes a sample GIF and verifies checksums; ``import SRC --out DIR`` brings a LeRobot dataset
or a folder of videos into one (``wmkit.core.data.importer``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wmkit.core.cli import Command

__all__ = ["action_histogram", "command", "dataset_summary", "write_sample_gif"]


def action_histogram(spec: Any, actions: np.ndarray) -> list[str]:
    """Lines describing ``actions [N, ...]`` under ``spec``: counts per discrete action,
    per component value (multi-discrete), or per-dimension mean/std/min/max (continuous)."""
    n = len(actions)
    if n == 0:
        return ["  (no steps)"]
    lines = []
    if spec.kind == "discrete":
        counts = np.bincount(actions.astype(np.int64), minlength=spec.n)
        names = spec.names or tuple(str(i) for i in range(spec.n))
        for name, c in zip(names, counts):
            lines.append(f"  {name:<20}{c:>9}  {100 * c / n:5.1f}%  {'#' * round(40 * c / n)}")
    elif spec.kind == "multi_discrete":
        names = spec.names or tuple(f"component {i}" for i in range(len(spec.nvec)))
        for i, (name, k) in enumerate(zip(names, spec.nvec)):
            counts = np.bincount(actions[:, i].astype(np.int64), minlength=k)
            parts = "  ".join(f"{v}: {c} ({100 * c / n:.1f}%)" for v, c in enumerate(counts))
            lines.append(f"  {name:<20}{parts}")
    else:
        flat = actions.reshape(n, -1).astype(np.float64)
        names = spec.names or tuple(f"dim {i}" for i in range(flat.shape[1]))
        lines.append(f"  {'':<20}{'mean':>9}{'std':>9}{'min':>9}{'max':>9}")
        for name, col in zip(names, flat.T):
            lines.append(
                f"  {name:<20}{col.mean():9.3f}{col.std():9.3f}{col.min():9.3f}{col.max():9.3f}"
            )
    return lines


def dataset_summary(store: Any) -> str:
    """Multi-line human-readable summary of an ``EpisodeStore``."""
    m = store.manifest
    lengths = np.array([store.episode_length(i) for i in range(len(store))], np.int64)
    steps = [store.read_steps(i, 0, int(t)) for i, t in enumerate(lengths)]
    res = store.resolution
    fmt = m.get("frame_format")
    if fmt == "video":
        fmt += " (lossless)" if m.get("crf") is None else f" (crf {m['crf']})"
    lines = [
        f"dataset      {store.root}",
        f"env          {m.get('env')} {json.dumps(m.get('env_kwargs', {}), sort_keys=True)}",
        f"policy       {json.dumps(m.get('policy'), sort_keys=True)}",
        f"seed         {m.get('seed')}",
        f"episodes     {len(store)}",
    ]
    if len(lengths):
        lines.append(
            f"frames       {int(lengths.sum())} (per episode min {lengths.min()}, mean "
            f"{lengths.mean():.1f}, max {lengths.max()})"
        )
    else:
        lines.append("frames       0")
    lines += [
        f"resolution   {f'{res[0]}x{res[1]}' if res else 'unknown'}",
        f"fps          {store.fps:g}",
        f"format       {fmt}, chunk {m.get('chunk')}",
        f"action spec  {store.action_spec.describe()}"
        + (f" names {list(store.action_spec.names)}" if store.action_spec.names else "")
        if store.action_spec is not None
        else "action spec  none (action-free video)",
    ]
    if steps and store.action_spec is not None:
        returns = np.array([s["rewards"].sum() for s in steps], np.float64)
        lines.append(
            f"return       mean {returns.mean():.3f}, std {returns.std():.3f}, "
            f"min {returns.min():.3f}, max {returns.max():.3f} (reward sum per episode)"
        )
        ended = sum(bool(s["dones"][-1]) for s in steps)
        lines.append(
            f"ended        {ended} of {len(steps)} episodes by a termination (the rest by a "
            "time limit)"
        )
        finals = sum(bool(store.has_final_frame(i)) for i in range(len(store)))
        lines.append(f"final obs    {finals} of {len(store)} episodes store the frame after "
                     "their last action")  # fmt: skip
        lines.append("actions")
        lines += action_histogram(store.action_spec, np.concatenate([s["actions"] for s in steps]))
    return "\n".join(lines)


def write_sample_gif(store: Any, path: str | os.PathLike, episodes: int = 4,
                     frames: int = 32) -> Path:  # fmt: skip
    """The first ``frames`` frames of the first ``episodes`` episodes side by side, as a GIF
    (shorter episodes hold their last frame)."""
    from wmkit.core.video import frame_grid, to_float_video
    from wmkit.core.video_io import write_gif

    n = min(episodes, len(store))
    if n == 0:
        raise ValueError(f"{store.root} has no episodes to show")
    videos = []
    for i in range(n):
        clip = store.read_frames(i, 0, min(frames, store.episode_length(i)))
        if len(clip) < frames:
            clip = np.concatenate([clip, np.repeat(clip[-1:], frames - len(clip), axis=0)])
        videos.append(to_float_video(clip))
    return write_gif(path, frame_grid(videos), fps=min(store.fps, 30.0))


def _info(args: argparse.Namespace) -> int:
    from wmkit.core.data.episode_store import CorruptDatasetError, EpisodeStore

    try:
        store = EpisodeStore(args.dir)
    except (FileNotFoundError, CorruptDatasetError) as e:
        print(f"wmkit data info: error: {e}", file=sys.stderr)
        return 2
    print(dataset_summary(store))
    if args.gif:
        print(f"gif          {write_sample_gif(store, args.gif)}")
    if args.verify:
        try:
            store.verify()
        except CorruptDatasetError as e:
            print(f"verify       FAILED: {e}", file=sys.stderr)
            return 1
        print("verify       ok (every file matches its sha256)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from wmkit.core.data.importer import import_dataset

    try:
        out = import_dataset(
            args.src, args.out, kind=args.kind, camera_key=args.camera_key,
            action_spec=args.action_spec, resolution=args.resolution,
            frame_format=args.frame_format, episodes_per_shard=args.episodes_per_shard,
            progress=not args.no_progress,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"wmkit data import: error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: imported from {args.src} (inspect: wmkit data info {out})")
    return 0


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wmkit data", description=command.help)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{info,import}")
    info = sub.add_parser("info", help="summarise a wmkit episode dataset")
    info.add_argument("dir", help="dataset directory")
    info.add_argument("--gif", default=None, help="write a sample GIF of the first episodes")
    info.add_argument("--verify", action="store_true", help="check every file's sha256")
    imp = sub.add_parser(
        "import",
        help="copy a LeRobot dataset or a folder of videos into a wmkit episode dataset "
        "(resumable: rerun the same command after a crash)",
    )
    imp.add_argument("src", help="LeRobot dataset (v2.x, v3.0) or folder of videos")
    imp.add_argument("--out", required=True, help="episode dataset directory (resumed if present)")
    imp.add_argument("--kind", choices=("auto", "lerobot", "video_folder"), default="auto")
    imp.add_argument("--camera-key", default=None, help="LeRobot camera (default: the first)")
    imp.add_argument("--action-spec", default=None, metavar="JSON",
                     help='e.g. \'{"kind": "discrete", "n": 15}\' (default: inferred)')  # fmt: skip
    imp.add_argument("--resolution", type=int, default=None, help="resize frames to N x N")
    imp.add_argument("--frame-format", choices=("npz", "video"), default="npz",
                     help="npz (fastest to read) or lossless video (smaller)")  # fmt: skip
    imp.add_argument("--episodes-per-shard", type=int, default=8)
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return _import(args) if args.cmd == "import" else _info(args)


command = Command(help="datasets: wmkit data info DIR, wmkit data import SRC --out DIR", run=_run)

if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
