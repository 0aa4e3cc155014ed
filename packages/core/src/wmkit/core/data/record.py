"""``wmkit record``: record episodes from a simulator into an ``EpisodeStore`` dataset.

Episode ``i`` of a recording with seed ``s`` is a pure function of ``(s, i)``: the env and
the policy's generator are both seeded with :func:`episode_seed`, and every env starts each
episode afresh from that seed. A killed recording therefore resumes after its last complete
episode (``EpisodeWriter`` commits shards atomically) and ends with exactly the episodes an
uninterrupted run would have written (DESIGN.md §4).

Step alignment (DESIGN.md §3): ``frames[t]`` is the observation before ``actions[t]``;
``rewards[t]`` and ``dones[t]`` are what that action brought. ``dones`` are terminations only:
an episode cut short by ``max_steps`` or by the simulator's time limit simply ends with
``done = False`` (see :class:`~wmkit.core.data.envs.RecordableEnv`). The observation after the
last action has no action; it is stored apart as the episode's *final observation*
(``EpisodeStore.final_frame``), so the last transition, often the one that ends the episode,
has its next frame too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wmkit.core.cli import Command
from wmkit.core.data.envs import ENVS, ExplorationPolicy, RecordableEnv, make_env
from wmkit.core.data.episode_loop import write_episodes

if TYPE_CHECKING:
    from wmkit.core.data.episode_store import EpisodeWriter

__all__ = ["command", "episode_seed", "make_policy", "record", "record_episode"]

_SIMULATOR_DISTS = {
    "crafter": ("crafter",),
    "metaworld": ("metaworld", "mujoco", "gymnasium"),
    "vizdoom": ("vizdoom",),
    "atari": ("ale-py",),
}


def episode_seed(seed: int, index: int) -> int:
    """Seed of episode ``index`` in a recording with base ``seed`` (a uint32)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and episode index must be >= 0; got {seed}, {index}")
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def make_policy(env: RecordableEnv, policy: str | ExplorationPolicy | None) -> ExplorationPolicy:
    """The env's policy ``name`` or ``"name:key=value,key=value"`` (default: its first).

    An :class:`ExplorationPolicy` instance is returned as is.
    """
    if isinstance(policy, ExplorationPolicy):
        return policy
    factories = env.policies()
    if policy is None:
        return next(iter(factories.values()))()
    name, _, params = policy.partition(":")
    if name not in factories:
        raise ValueError(f"unknown policy {name!r} for this env; known: {', '.join(factories)}")
    kwargs = {}
    for item in filter(None, params.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"policy parameters must be key=value; got {item!r} in {policy!r}")
        kwargs[key.strip()] = _parse_value(value.strip())
    try:
        return factories[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"bad parameters for policy {name!r}: {e}") from e


def record_episode(
    env: RecordableEnv, policy: ExplorationPolicy, seed: int, max_steps: int | None = None
) -> dict[str, np.ndarray]:
    """Run one episode; returns ``frames uint8 [T, H, W, 3]``, ``actions [T, ...]``,
    ``rewards float32 [T]``, ``dones bool [T]`` and ``final_frame uint8 [H, W, 3]``, the
    observation after the last action (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frame = env.reset(seed)
    policy.reset(rng)
    frames, actions, rewards, dones = [], [], [], []
    for _ in range(max_steps or env.max_steps):
        action = policy.act(env.observation, rng)
        frames.append(frame)
        frame, reward, done = env.step(action)
        actions.append(action)
        rewards.append(reward)
        dones.append(done)
        if done or getattr(env, "truncated", False):  # a time limit ends the episode without a done
            break
    kind = env.action_spec.kind
    return {
        "frames": np.stack(frames),
        "actions": np.asarray(actions, np.float32 if kind == "continuous" else np.int64),
        "rewards": np.asarray(rewards, np.float32),
        "dones": np.asarray(dones, bool),
        "final_frame": frame,
    }


def _simulator_versions(env_name: str) -> dict[str, str]:
    out = {}
    for dist in _SIMULATOR_DISTS.get(env_name, ()):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def record(
    env_name: str,
    out: str | os.PathLike,
    episodes: int,
    resolution: int = 64,
    seed: int = 0,
    policy: str | ExplorationPolicy | None = None,
    frame_format: str = "video",
    crf: int | None = None,
    episodes_per_shard: int = 8,
    max_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Record episodes ``0 .. episodes-1`` of ``env_name`` into dataset ``out``.

    Resumes an existing dataset (same settings required) at its first missing episode, so
    running the same command again after a crash completes it; returns ``out``.

    Args:
        env_name: a key of ``wmkit.core.data.envs.ENVS``.
        out: dataset directory.
        episodes: total number of episodes the dataset should hold.
        resolution: square frame size in pixels.
        seed: base seed; episode ``i`` uses ``episode_seed(seed, i)``.
        policy: the env's policy name, ``"name:key=value,..."`` or an instance.
        frame_format: ``"video"`` (mkv) or ``"npz"``.
        crf: ``None`` for lossless video, else the h264 CRF.
        episodes_per_shard: episodes per atomic shard (what a crash can lose at most).
        max_steps: episode length cap (default: the env's).
        env_kwargs: env options (``task``, ``camera``, ``scenario``, ...).
        progress: show a tqdm progress bar.
    """
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0; got {episodes}")
    episode_seed(seed, 0)  # validates seed
    kwargs = dict(env_kwargs or {})
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    out = Path(out)
    env = make_env(env_name, resolution, **kwargs)
    try:
        pol = make_policy(env, policy)
        writer = _open_writer(
            out, env, env_name, pol, seed, resolution, frame_format, crf, episodes_per_shard
        )

        def add_episode(i: int) -> int:
            s = episode_seed(seed, i)
            ep = record_episode(env, pol, s)
            writer.add_episode(ep["frames"], ep["actions"], ep["rewards"], ep["dones"],
                               seed=s, info={"return": float(ep["rewards"].sum())},
                               final_frame=ep["final_frame"])  # fmt: skip
            return len(ep["actions"])

        start = writer.num_episodes
        write_episodes(writer, add_episode, start=start, total=episodes,
                       initial=min(start, episodes), desc=f"record {env_name}",
                       rate="steps_per_s", progress=progress)  # fmt: skip
    finally:
        env.close()
    return out


def _open_writer(
    out: Path,
    env: RecordableEnv,
    env_name: str,
    policy: ExplorationPolicy,
    seed: int,
    resolution: int,
    frame_format: str,
    crf: int | None,
    episodes_per_shard: int,
) -> EpisodeWriter:
    """The writer of a recording into ``out``, its manifest naming the env, policy, seed and
    simulator versions; refuses to resume a dataset recorded at another resolution."""
    from wmkit.core.data.episode_store import EpisodeWriter

    writer = EpisodeWriter(
        out,
        action_spec=env.action_spec,
        fps=env.fps,
        env=env_name,
        env_kwargs=env.env_kwargs,
        policy=policy.describe(),
        seed=int(seed),
        frame_format=frame_format,  # type: ignore[arg-type]
        crf=crf,
        episodes_per_shard=episodes_per_shard,
        extra={"simulator_versions": _simulator_versions(env_name)},
    )
    stored = writer.settings["resolution"]
    if stored is not None and list(stored) != [int(resolution)] * 2:
        raise ValueError(
            f"{out} holds {stored[0]}x{stored[1]} frames; resume it with resolution "
            f"{stored[0]} or record {resolution}x{resolution} into a new directory"
        )
    return writer


# ---------------------------------------------------------------------------------------- CLI
def _epilog() -> str:
    lines = ["envs:"]
    lines += [f"  {name:<11}{factory.help}" for name, factory in ENVS.items()]
    lines += [
        "",
        "Rerunning the same command resumes an interrupted recording.",
        "Policy parameters: --policy noisy_expert:noise_std=0.5,random_prob=0.2",
    ]
    return "\n".join(lines)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="wmkit record",
        description=command.help,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("env", choices=list(ENVS), metavar="ENV", help="environment: "
                        + ", ".join(ENVS))  # fmt: skip
    parser.add_argument("--episodes", type=int, required=True, help="total episodes")
    parser.add_argument("--out", required=True, help="dataset directory (resumed if present)")
    parser.add_argument("--resolution", type=int, default=64, help="frame size (64, 128, 256)")
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    parser.add_argument("--policy", default=None, help="exploration policy (default: env's)")
    parser.add_argument("--format", dest="frame_format", choices=("video", "npz"),
                        default="video", help="frame storage")  # fmt: skip
    parser.add_argument("--crf", type=int, default=None, help="lossy h264 CRF (default lossless)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode length cap")
    parser.add_argument("--episodes-per-shard", type=int, default=8)
    parser.add_argument("--task", default=None, help="metaworld: task, e.g. pick-place-v3")
    parser.add_argument("--camera", default=None, help="metaworld: camera (default corner)")
    parser.add_argument("--scenario", default=None, help="vizdoom: scenario (default basic)")
    parser.add_argument("--frame-skip", type=int, default=None,
                        help="vizdoom: tics per action; atari: frames per action")  # fmt: skip
    parser.add_argument("--game", default=None, help="atari: game, e.g. MsPacman (default)")
    parser.add_argument(
        "--env-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other env option, e.g. area=32 (crafter), goal_seed=1 (metaworld)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    env_kwargs = {k: getattr(args, k) for k in ("task", "camera", "scenario", "frame_skip", "game")}
    env_kwargs = {k: v for k, v in env_kwargs.items() if v is not None}
    for item in args.env_option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env-option must be KEY=VALUE; got {item!r}")
        env_kwargs[key.strip()] = _parse_value(value.strip())
    try:
        out = record(
            args.env, args.out, args.episodes, resolution=args.resolution, seed=args.seed,
            policy=args.policy, frame_format=args.frame_format, crf=args.crf,
            episodes_per_shard=args.episodes_per_shard, max_steps=args.max_steps,
            env_kwargs=env_kwargs, progress=not args.no_progress,
        )  # fmt: skip
    except (ValueError, ImportError) as e:
        print(f"wmkit record: error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {args.episodes} episodes of {args.env} (inspect: wmkit data info {out})")
    return 0


command = Command(
    help="record episodes from a simulator (crafter, metaworld, vizdoom, atari)", run=_run
)

if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
