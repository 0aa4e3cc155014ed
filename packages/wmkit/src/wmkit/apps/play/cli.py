"""``wmkit play``: serve a page on 127.0.0.1 to drive a world model with the keyboard.

Another ``--host`` (other machines reach it) needs ``--allow-remote`` and then a random token,
printed in the page's URL (``wmkit.apps.play.access``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wmkit.core.cli import Command

if TYPE_CHECKING:
    from torch import Tensor

    from wmkit.apps.play.bindings import Bindings
    from wmkit.apps.play.session import PlaySession

__all__ = ["build_session", "command", "load_policy", "remote_token"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wmkit play",
        description="Drive a world model (or the real environment) from your browser.",
    )
    p.add_argument("--world", type=Path, help="world model directory (save_pretrained output)")
    p.add_argument("--env", help="real environment to play or to switch to (e.g. crafter)")
    p.add_argument("--resolution", type=int, default=None,
                   help="frame size: of the environment (default 64) or, with --data, of "
                   "the dataset's context frames (default: as recorded)")  # fmt: skip
    p.add_argument("--game", help="atari: the game, e.g. MsPacman (same as --env-arg game=...)")
    p.add_argument(
        "--env-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option (repeatable), e.g. --env-arg task=reach-v3",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="dataset whose clips start the world model when no environment is given",
    )
    p.add_argument("--context", type=int, default=1, help="context frames given to the model")
    p.add_argument(
        "--policy",
        type=Path,
        help="agent directory (save_pretrained output, e.g. wmkit convert diamond's DIR/policy): "
        "the agent drives, Tab hands control to you and back",
    )
    p.add_argument("--greedy", action="store_true", help="the agent takes its likeliest action")
    p.add_argument("--bindings", type=Path, help="JSON key bindings (see wmkit.apps.play.bindings)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on; one that is not loopback needs --allow-remote",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on a --host that other machines reach; every request then needs the random "
        "token of the printed URL",
    )
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--fps", type=float, default=15.0, help="target frames per second")
    p.add_argument("--device", default="cpu")
    p.add_argument("--record-dir", type=Path, default=Path("recordings"))
    p.add_argument(
        "--max-record-seconds",
        type=float,
        default=600.0,
        help="longest recording (held in memory until it stops); it stops there, play goes on",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def build_session(args: argparse.Namespace) -> tuple[PlaySession, Bindings]:
    """The ``PlaySession`` and ``Bindings`` that the arguments describe."""
    from wmkit.apps.play.bindings import Bindings, default_bindings
    from wmkit.apps.play.session import PlaySession
    from wmkit.core import load_pretrained

    if args.world is None and args.env is None:
        raise SystemExit("wmkit play: give --world DIR, --env NAME, or both")
    world = None
    if args.world is not None:
        world = load_pretrained(args.world, map_location=args.device)
    env = None
    if args.env is not None:
        from wmkit.core.data.envs import make_env

        kwargs = {} if args.game is None else {"game": args.game}
        for item in args.env_arg:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"wmkit play: --env-arg needs KEY=VALUE; got {item!r}")
            try:  # numbers and booleans as JSON (area=32, done_on_life_loss=true)
                kwargs[key] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key] = value
        env = make_env(args.env, args.resolution or 64, **kwargs)
    context = None
    if world is not None and env is None:
        if args.data is None:
            raise SystemExit("wmkit play: a world model without --env needs --data DIR for context")
        context = _dataset_context(args.data, args.context, args.seed, args.resolution)
    policy = None if args.policy is None else load_policy(args.policy, args.greedy, args.seed,
                                                           args.device)  # fmt: skip
    session = PlaySession(
        world,
        env,
        policy=policy,
        context=context,
        context_frames=args.context,
        seed=args.seed,
        record_dir=args.record_dir,
        fps=args.fps,
        device=args.device,
        max_record_seconds=args.max_record_seconds,
    )
    spec = session.action_spec
    n = getattr(policy, "num_actions", None)
    if n is not None and (spec.kind != "discrete" or n != spec.n):
        raise SystemExit(
            f"wmkit play: the policy at {args.policy} chooses among {n} actions; the "
            f"{'world model' if world is not None else 'environment'} takes {spec.describe()}"
        )
    bindings = Bindings.load(args.bindings, spec) if args.bindings else default_bindings(spec)
    return session, bindings


def load_policy(path: Path, greedy: bool = False, seed: int = 0, device: str = "cpu") -> Any:
    """The agent saved at ``path`` as a policy: a model with ``as_policy(greedy, seed,
    device)`` (DIAMOND's actor-critic) is wrapped by it; one that already is a policy
    (``reset()`` and callable on frames) is used as it is."""
    from wmkit.core import load_pretrained

    model = load_pretrained(path, map_location=device)
    if callable(getattr(model, "as_policy", None)):
        return model.as_policy(greedy=greedy, seed=seed, device=device)
    if callable(model) and callable(getattr(model, "reset", None)):
        return model
    raise SystemExit(
        f"wmkit play: {path} holds a {type(model).__name__}, which is not a policy (no "
        "as_policy(), no reset())"
    )


def remote_token(args: argparse.Namespace) -> str | None:
    """The token a server on ``args.host`` requires (``None`` on loopback); refuses a host
    that is not loopback unless ``--allow-remote`` is given."""
    import secrets

    from wmkit.apps.play.access import is_loopback

    if is_loopback(args.host):
        return None
    if not args.allow_remote:
        raise SystemExit(
            f"wmkit play: --host {args.host} is not a loopback address, so other machines "
            "could drive the model and write recordings; pass --allow-remote to serve it "
            "anyway (every request then needs the random token of the printed URL)"
        )
    return secrets.token_urlsafe(16)


def _dataset_context(
    path: Path, frames: int, seed: int, resolution: int | None = None
) -> Callable[[], Tensor]:
    """Random held-out clips of ``frames`` frames of the dataset at ``path`` (resized to
    ``resolution`` when given), the contexts a world model starts from."""
    import numpy as np

    from wmkit.core.data.clip_dataset import ClipDataset, split_episodes
    from wmkit.core.data.open_source import open_source

    source = open_source(path)
    held_out = split_episodes(len(source), seed=0)["test"] or list(range(len(source)))
    clips = ClipDataset(
        source, clip_length=frames, mode="sequential", episodes=held_out, with_steps=False,
        resolution=resolution,
    )  # fmt: skip
    rng = np.random.default_rng(seed)

    def context() -> Tensor:
        return clips[int(rng.integers(len(clips)))]["frames"].unsqueeze(0)

    return context


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    token = remote_token(args)
    from aiohttp import web

    from wmkit.apps.play.access import page_url
    from wmkit.apps.play.server import create_app

    session, bindings = build_session(args)
    title = str(args.world or args.env)
    app = create_app(session, bindings, fps=args.fps, title=title, host=args.host, token=token)
    k = session.frames_per_step
    if k > 1:
        print(
            f"wmkit play: {title} generates {k} frames per latent step, so each frame shows "
            f"{k - 1} frames after its action (+{1000 * (k - 1) / args.fps:.0f} ms at "
            f"{args.fps:g} frames/s; the page shows the measured latency)"
        )
    print(f"wmkit play: open {page_url(args.host, args.port, token)} (Ctrl-C to stop)")
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


command = Command(help="drive a world model from your browser (keyboard, mouse)", run=_run)
