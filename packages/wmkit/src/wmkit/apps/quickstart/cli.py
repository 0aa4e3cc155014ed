"""``wmkit quickstart``: the whole loop (data → tokenizer → world model → report) in one go."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from wmkit.core.cli import Command

__all__ = ["command"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wmkit quickstart",
        description="Record a small dataset, train a tokenizer and a world model, evaluate "
        "rollouts against copy-last-frame and write a report. Killed and rerun, it resumes.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    p.add_argument("--data-dir", type=Path, help="recorded dataset (default runs/data/<env>-...)")
    p.add_argument("--data", type=Path, help="train on this dataset instead of recording one: a "
                   "wmkit episode dataset, a LeRobot dataset or a folder of videos (read at "
                   "--resolution)")  # fmt: skip
    p.add_argument("--camera-key", help="--data LeRobot camera (default: its first)")
    p.add_argument(
        "--action-spec",
        metavar="JSON",
        help="--data LeRobot action spec, e.g. "
        '\'{"kind": "discrete", "n": 15}\' (default: inferred from the data)',
    )
    p.add_argument("--env", default="crafter", choices=["crafter", "metaworld", "vizdoom"])
    p.add_argument(
        "--world",
        default="diffusion",
        choices=["diffusion", "ar"],
        help="world model family: diffusion (per-frame KL tokenizer + Diffusion Forcing DiT on "
        "its latents; the default) or ar (compressive FSQ tokenizer + autoregressive "
        "transformer)",
    )
    p.add_argument(
        "--tokenizer",
        default="per-frame",
        choices=["per-frame", "vidtok-4x"],
        help="the diffusion world model's tokenizer: per-frame (the default: one latent per "
        "frame) or vidtok-4x (a causal VidTok with 4x temporal compression: the world model "
        "makes 4 frames per step, so play shows each frame 3 frames after its action)",
    )
    p.add_argument("--preset", default="default", help="budget: tiny (tests), default, gpu")
    p.add_argument("--tiny", action="store_true", help="shorthand for --preset tiny")
    p.add_argument("--device", help="cpu or cuda (default: the preset's)")
    p.add_argument(
        "--size",
        help="world model size (default small on CPU; on CUDA base for diffusion, 300M for ar)",
    )
    p.add_argument("--resolution", type=int)
    p.add_argument("--episodes", type=int)
    p.add_argument("--seed", type=int, default=0)
    return p


def _data_changes(args: argparse.Namespace) -> dict[str, Any]:
    """Plan fields for ``--data``: the dataset, its reader and the reader's options (frames
    decoded at the plan's resolution, a given action spec as a mapping in the configs)."""
    from wmkit.core import ActionSpec
    from wmkit.core.data.open_source import detect_kind

    if args.data is None:
        if args.camera_key or args.action_spec:
            raise SystemExit("wmkit quickstart: --camera-key and --action-spec go with --data")
        return {}
    if not args.data.exists():
        raise SystemExit(f"wmkit quickstart: --data {args.data} does not exist")
    kind = detect_kind(args.data)
    options: dict[str, Any] = {}
    if kind == "lerobot":
        if args.camera_key:
            options["camera_key"] = args.camera_key
        if args.action_spec:
            try:
                options["action_spec"] = ActionSpec.coerce(args.action_spec, "--action-spec")
            except (TypeError, ValueError) as e:
                raise SystemExit(f"wmkit quickstart: {e}") from e
            options["action_spec"] = options["action_spec"].to_dict()
    elif args.camera_key or args.action_spec:
        raise SystemExit(
            f"wmkit quickstart: --camera-key and --action-spec apply to LeRobot datasets; "
            f"{args.data} is a {kind} dataset"
        )
    return {"data": args.data, "data_kind": kind, "source_kwargs": options or None}


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from wmkit.apps.quickstart.plan import PRESETS, QuickstartPlan
    from wmkit.apps.quickstart.runner import run_quickstart

    preset = "tiny" if args.tiny else args.preset
    if preset not in PRESETS:
        raise SystemExit(
            f"wmkit quickstart: unknown preset {preset!r}; choose from {list(PRESETS)}"
        )
    changes = dict(PRESETS[preset])
    for name, value in (
        ("device", args.device),
        ("world_size", args.size),
        ("resolution", args.resolution),
        ("episodes", args.episodes),
    ):
        if value is not None:
            changes[name] = value
    try:
        plan = QuickstartPlan(
            out=args.out, data_dir=args.data_dir, env=args.env, world=args.world,
            tokenizer=args.tokenizer, seed=args.seed,
        ).scaled(**changes, **_data_changes(args))  # fmt: skip
    except ValueError as e:
        raise SystemExit(f"wmkit quickstart: {e}") from e
    start = time.perf_counter()
    result = run_quickstart(plan)
    m = result.metrics
    if not m:  # action-free video: the tokenizer only
        print(f"\ntokenizer:   {result.tokenizer_dir}   (load_pretrained)")
        print(f"rerun it:    wmkit tokenizer fit -c {result.configs['tokenizer']}")
        print(f"{plan.dataset} has no actions: no world model was trained. Learn latent actions "
              "from it with wmkit latent-action fit, or give a dataset with actions.")  # fmt: skip
        return 0
    print(
        f"\n== wmkit quickstart done in {time.perf_counter() - start:.0f} s "
        f"(steps: {', '.join(f'{k} {v:.0f} s' for k, v in result.durations.items())})"
    )
    print(m["table"])
    print(f"{m['verdict']}; action controllability ΔPSNR {m['delta_psnr']:+.2f} dB")
    alone = m.get("world_alone") or {}
    if alone:
        print(
            f"the world model without its change gate: PSNR {alone['psnr']:.2f} dB, PSNR/frame "
            f"{alone['psnr_frame_mean']:.2f} dB, SSIM {alone['ssim']:.3f}"
            + (f", LPIPS {alone['lpips']:.4f}" if alone.get("lpips") is not None else "")
            + f", ΔPSNR {alone['delta_psnr']:+.2f} dB"
        )
    print(f"\nreport:      {result.report_dir / 'report.html'}")
    print(f"tokenizer:   {result.tokenizer_dir}   (load_pretrained)")
    print(f"world model: {result.served_dir}   (load_pretrained)")
    print("rerun one stage:")
    print(f"  wmkit tokenizer fit -c {result.configs['tokenizer']}")
    stage = "diffusion-world" if plan.world == "diffusion" else "ar-world"
    print(f"  wmkit {stage} fit -c {result.configs['world']}")
    if result.gated_dir is not None:
        print(f"  wmkit gate fit -c {result.configs['gate']}")
    source = f"--data {plan.dataset}" if plan.data else f"--env {plan.env}"
    print(
        f"play it:     wmkit play --world {result.served_dir} {source} "
        f"--resolution {plan.resolution}"
    )
    print(
        f"evaluate:    wmkit eval rollout --world {result.served_dir} "
        f"--config {result.configs['world']}"
    )
    return 0


command = Command(help="the whole loop on one CPU: record, train, evaluate, report", run=_run)
