"""Train the quickstart recipe on every environment wmkit records and print its quality table.

    uv run python tools/bench_quality.py                          # default budget, all envs
    uv run python tools/bench_quality.py --tiny                   # the smoke budget
    uv run python tools/bench_quality.py --envs crafter,atari --world ar --seeds 0,1
    uv run python tools/bench_quality.py --envs none --data DIR   # only a dataset of your own

For each env it records episodes with ``wmkit record <env>`` (the quickstart's episode count,
episode length and resolution, the env's own exploration policy; Crafter's ``explore`` as the
quickstart uses, Atari's ``--game``), trains the quickstart recipe on them exactly as
``wmkit quickstart --data <recording>`` does (:func:`wmkit.apps.quickstart.run_quickstart`)
and prints one row per env × world × seed: PSNR of the mean MSE, mean per-frame PSNR, SSIM and
LPIPS of the model, of copy-last-frame and of the tokenizer's reconstruction (the
ceiling), whether the model beats copy-last on all four,
controllability (ΔPSNR of true over random actions), the same measures of the world model
without the change gate it is served through, and the training time. ``--data DIR`` adds
a dataset wmkit did not record (a LeRobot dataset, a wmkit dataset, a video folder). An env
whose simulator is not installed is skipped with the reason printed. The raw numbers go to
``results/bench_quality.json``. A recording is shared by the world families of its seed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from wmkit.apps.quickstart import PRESETS, QuickstartPlan, run_quickstart
from wmkit.apps.quickstart.cli import _data_changes
from wmkit.eval import hardware_info

#: the recorded envs and the ``wmkit record`` options each is benchmarked with
ENV_OPTIONS: dict[str, list[str]] = {
    "crafter": ["--policy", "explore"],  # the quickstart's policy: walks and interacts often
    "vizdoom": [],  # the basic scenario, sticky random buttons
    "metaworld": [],  # reach-v3 from the corner camera, noisy scripted expert
    "atari": [],  # --game is added from this script's --game
}
IMAGE = ("psnr", "psnr_frame_mean", "ssim", "lpips")
COLUMNS = [
    "data", "world", "seed",
    "PSNR model", "PSNR copy-last",
    "PSNR/frame model", "PSNR/frame copy-last",
    "SSIM model", "SSIM copy-last",
    "LPIPS model", "LPIPS copy-last",
    "beats copy-last (all four)", "model − copy-last (PSNR, PSNR/frame, SSIM, LPIPS)",
    "tokenizer ceiling (PSNR, PSNR/frame, SSIM, LPIPS)", "ΔPSNR controllability",
    "world model without its gate (PSNR, PSNR/frame, SSIM, LPIPS, ΔPSNR)",
    "record (s)", "train (s)", "evaluate (s)",
]  # fmt: skip


def hardware(info: dict[str, Any]) -> str:
    """One line from :func:`wmkit.eval.hardware_info`: the CPU model (as ``lscpu`` names it),
    its cores and the GPU."""
    gpu = info.get("gpu", "no GPU")
    return f"{info['cpu']}, {info['cpu_count']} CPU cores, {gpu}"


def simulator_missing(env: str, options: dict[str, Any]) -> str | None:
    """Why ``env`` cannot be recorded here (its simulator does not import or build), or None."""
    from wmkit.core.data.envs import make_env

    try:
        make_env(env, 32, **options).close()
    except ImportError as e:
        return str(e)
    return None


def record_argv(env: str, out: Path, plan: QuickstartPlan, game: str) -> list[str]:
    """``wmkit record`` arguments for ``env`` at the plan's budget."""
    argv = [env, "--out", str(out), "--episodes", str(plan.episodes),
            "--max-steps", str(plan.max_steps), "--resolution", str(plan.resolution),
            "--seed", str(plan.seed), "--format", "npz", "--no-progress",
            *ENV_OPTIONS[env]]  # fmt: skip
    if env == "atari":
        argv += ["--game", game]
    return argv


def record_env(argv: list[str]) -> float:
    """Run ``wmkit record ARGV``; returns its seconds."""
    from wmkit.core.data.record import command

    print(f"$ wmkit record {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    code = command.run(argv)
    if code:
        raise RuntimeError(f"wmkit record {shlex.join(argv)} exited with {code}")
    return time.perf_counter() - start


def train(plan: QuickstartPlan) -> dict[str, Any]:
    """The quickstart recipe on ``plan.data``; the row of figures it measured."""
    result = run_quickstart(plan)
    m, d = result.metrics, result.durations
    if not m:
        raise RuntimeError(f"{plan.dataset} has no actions: the quickstart trained no world model")
    return {
        **{k: m.get(k) for k in IMAGE},
        **{f"copy_last_{k}": m.get(f"copy_last_{k}") for k in IMAGE},
        **{f"reconstruction_{k}": m.get(f"reconstruction_{k}") for k in IMAGE},
        "beats_copy_last": bool(m["beats_copy_last"]),
        "verdict": m["verdict"],
        "delta_psnr": m["delta_psnr"],
        "world_alone": m.get("world_alone") or {},
        "train_s": sum(d.get(k, 0.0) for k in ("tokenizer", "world", "gate")),
        "tokenizer_s": d.get("tokenizer", 0.0),
        "world_s": d.get("world", 0.0),
        "gate_s": d.get("gate", 0.0),
        "evaluate_s": d.get("evaluate", 0.0),
    }


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def margins(row: dict[str, Any]) -> str:
    """Model minus copy-last on each image measure, to more digits than the figures: a win
    or loss too small to show in them is still visible."""
    cells = []
    for k, spec in (("psnr", "+.3f"), ("psnr_frame_mean", "+.3f"), ("ssim", "+.4f"),
                    ("lpips", "+.5f")):  # fmt: skip
        model, base = row[k], row[f"copy_last_{k}"]
        cells.append("–" if model is None or base is None else format(model - base, spec))
    return " / ".join(cells)


def ceiling(row: dict[str, Any]) -> str:
    """The tokenizer's reconstruction of the predicted frames: the best the model could do."""
    specs = {"psnr": ".2f", "psnr_frame_mean": ".2f", "ssim": ".3f", "lpips": ".4f"}
    return " / ".join(_fmt(row.get(f"reconstruction_{k}"), specs[k]) for k in IMAGE)


def alone(measures: dict[str, Any]) -> str:
    """The world model's own measures, without the change gate the quickstart serves it
    through ("–" when it has no gate)."""
    if not measures:
        return "–"
    specs = {"psnr": ".2f", "psnr_frame_mean": ".2f", "ssim": ".3f", "lpips": ".4f"}
    cells = [_fmt(measures.get(k), specs[k]) for k in IMAGE]
    return " / ".join([*cells, _fmt(measures.get("delta_psnr"), "+.2f")])


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table: one row per data × world × seed (a failed run says why)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        head = [r["data"], r["world"], str(r["seed"])]
        if "error" in r:
            cells = [*head, f"failed: {r['error']}", *[""] * (len(COLUMNS) - 4)]
        else:
            cells = [
                *head,
                _fmt(r["psnr"], ".2f"), _fmt(r["copy_last_psnr"], ".2f"),
                _fmt(r["psnr_frame_mean"], ".2f"), _fmt(r["copy_last_psnr_frame_mean"], ".2f"),
                _fmt(r["ssim"], ".3f"), _fmt(r["copy_last_ssim"], ".3f"),
                _fmt(r["lpips"], ".4f"), _fmt(r["copy_last_lpips"], ".4f"),
                "yes" if r["beats_copy_last"] else "no", margins(r), ceiling(r),
                f"{r['delta_psnr']:+.2f}", alone(r.get("world_alone") or {}),
                _fmt(r.get("record_s"), ".0f"), f"{r['train_s']:.0f}", f"{r['evaluate_s']:.0f}",
            ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float], spec: str) -> str:
    ordered = sorted(values)
    median = statistics.median(ordered)
    if ordered[0] == ordered[-1]:
        return format(median, spec)
    return f"{median:{spec}} ({ordered[0]:{spec}} – {ordered[-1]:{spec}})"


def summary(rows: list[dict[str, Any]]) -> str:
    """Median (min – max) over seeds per data × world, for runs of several seeds; failed runs
    are left out and counted."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["world"]), []).append(r)
    head = ["data", "world", "seeds (failed)", "PSNR model", "PSNR copy-last",
            "SSIM model", "SSIM copy-last", "ΔPSNR controllability",
            "beats copy-last (all four)", "train (s)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (data, world), group in groups.items():
        ok = [r for r in group if "error" not in r]
        cells = [data, world, f"{len(group)} ({len(group) - len(ok)})"]
        if ok:
            cells += [
                _spread([r[k] for r in ok], spec)
                for k, spec in (("psnr", ".2f"), ("copy_last_psnr", ".2f"), ("ssim", ".3f"),
                                ("copy_last_ssim", ".3f"), ("delta_psnr", "+.2f"))
            ]  # fmt: skip
            cells += [f"{sum(r['beats_copy_last'] for r in ok)}/{len(ok)} seeds",
                      _spread([r["train_s"] for r in ok], ".0f")]  # fmt: skip
        else:
            cells += ["–"] * (len(head) - 3)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv(text: str, name: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise SystemExit(f"bench_quality: {name} is empty")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default=",".join(ENV_OPTIONS),
                   help=f"comma-separated envs from {', '.join(ENV_OPTIONS)}, or none")  # fmt: skip
    p.add_argument("--world", default="diffusion",
                   help="world families, comma-separated: diffusion, ar")  # fmt: skip
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="quickstart budget")
    p.add_argument("--tiny", action="store_true", help="shorthand for --preset tiny")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the preset's)")
    p.add_argument("--size", default=None, help="world model size (default: the quickstart's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: 0..repeats-1)")
    p.add_argument("--repeats", type=int, default=1, help="seeds 0..repeats-1")
    p.add_argument("--game", default="MsPacman", help="the Atari game")
    p.add_argument("--data", type=Path, help="also train on this never-seen dataset (LeRobot, "
                   "wmkit or a folder of videos)")  # fmt: skip
    p.add_argument("--camera-key", help="--data LeRobot camera (default: its first)")
    p.add_argument("--action-spec", metavar="JSON", help="--data LeRobot action spec")
    p.add_argument("--work", type=Path, help="keep recordings and runs here (default: a temp dir, "
                   "deleted after)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/bench_quality.json"))
    args = p.parse_args(argv)
    args.preset = "tiny" if args.tiny else args.preset
    envs = [] if args.envs == "none" else _csv(args.envs, "--envs")
    unknown = sorted(set(envs) - set(ENV_OPTIONS))
    if unknown:
        p.error(f"--envs: unknown {', '.join(unknown)}; choose from {', '.join(ENV_OPTIONS)}")
    args.envs = envs
    args.world = _csv(args.world, "--world")
    if set(args.world) - {"diffusion", "ar"}:
        p.error(f"--world takes diffusion and/or ar; got {','.join(args.world)}")
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1; got {args.repeats}")
    try:
        args.seeds = (
            [int(s) for s in _csv(args.seeds, "--seeds")] if args.seeds else
            list(range(args.repeats))
        )  # fmt: skip
    except ValueError:
        p.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    if not args.envs and args.data is None:
        p.error("nothing to run: --envs none and no --data")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    changes: dict[str, Any] = dict(PRESETS[args.preset])
    if args.device:
        changes["device"] = args.device
    if args.size:
        changes["world_size"] = args.size
    extra = {}
    if args.data is not None:
        extra = _data_changes(argparse.Namespace(
            data=args.data, camera_key=args.camera_key, action_spec=args.action_spec
        ))  # fmt: skip
    base = QuickstartPlan().scaled(**changes)
    work = args.work or Path(tempfile.mkdtemp(prefix="wmkit-bench-quality-"))
    command = "uv run python tools/bench_quality.py " + shlex.join(sys.argv[1:] if argv is None
                                                                    else argv)  # fmt: skip
    skipped: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for env in args.envs:
        options = {"game": args.game} if env == "atari" else {}
        reason = simulator_missing(env, options)
        if reason is not None:
            skipped[env] = reason
            print(f"skipping {env}: its simulator is not installed ({reason})", flush=True)
            continue
        for seed in args.seeds:
            data = work / "data" / f"{env}-s{seed}"
            argv_record = record_argv(env, data, base.scaled(seed=seed), args.game)
            try:
                record_s = record_env(argv_record)
            except Exception as e:  # the other envs still run; the exit code says it failed
                traceback.print_exc()
                rows += [{"data": env, "world": w, "seed": seed, "error": f"record: {e}"}
                         for w in args.world]  # fmt: skip
                continue
            for world in args.world:
                rows.append(_run(env, world, seed, base, work, data, record_s, argv_record))
    if args.data is not None:
        name = f"{args.data.name} (never seen)"
        for seed in args.seeds:
            for world in args.world:
                rows.append(_run(name, world, seed, base.scaled(**extra), work, args.data))

    machine = hardware_info(base.device)
    info = {
        "command": command,
        "preset": args.preset,
        "plan": {k: v for k, v in base.to_dict().items() if k not in ("out", "data_dir", "data")},
        "hardware": hardware(machine),
        "date": machine["date"][:10],
        "machine": machine,
        "skipped": skipped,
    }
    p = base
    print(f"\n`{command}`: quickstart recipe, preset {args.preset} ({p.episodes} episodes × "
          f"{p.max_steps} steps at {p.resolution}², {p.tokenizer_steps} tokenizer and "
          f"{p.world_steps} world-model steps, evaluated on {p.context} context + {p.horizon} "
          f"predicted frames); {info['hardware']}; {info['date']}\n")  # fmt: skip
    print(markdown(rows))
    if len(args.seeds) > 1:
        print(f"\nover seeds {', '.join(map(str, args.seeds))}: median (min – max)\n")
        print(summary(rows))
    for env, reason in skipped.items():
        print(f"\nskipped {env}: simulator not installed ({reason})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "runs": rows}, indent=2))
    print(f"\nwrote {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any("error" in r for r in rows) else 0


def _run(
    name: str,
    world: str,
    seed: int,
    base: QuickstartPlan,
    work: Path,
    data: Path,
    record_s: float | None = None,
    record_command: list[str] | None = None,
) -> dict[str, Any]:
    """One table row: the quickstart recipe with ``world`` and ``seed`` on ``data``."""
    row: dict[str, Any] = {"data": name, "world": world, "seed": seed, "record_s": record_s}
    if record_command is not None:
        row["record_command"] = "wmkit record " + shlex.join(record_command)
    slug = "".join(c if c.isalnum() else "-" for c in name)
    plan = base.scaled(out=work / "runs" / f"{slug}-{world}-s{seed}", world=world, seed=seed)
    if plan.data is None:
        plan = plan.scaled(data=data, data_kind="wmkit")
    print(f"\n== {name}, {world}, seed {seed}: wmkit quickstart --data {data}", flush=True)
    try:
        row.update(train(plan))
    except Exception as e:  # the other runs still go; the exit code says one failed
        traceback.print_exc()
        row["error"] = f"{type(e).__name__}: {e}"
    return row


if __name__ == "__main__":
    sys.exit(main())
