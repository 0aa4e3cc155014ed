"""``wmkit latent-action fit|test|probe``.

``fit``/``test`` (and every LightningCLI sub-command) train and evaluate a latent action
model on frames only; ``probe`` measures how much of the true action its latent actions
carry, on labelled episodes::

    wmkit latent-action fit -c packages/latent-action/configs/tiny.yaml
    wmkit latent-action probe --model out/latent_action/tiny --data data/crafter-64 --out probe/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmkit.core import Command, make_stage

__all__ = ["command", "probe_main"]


def _model_class() -> type:
    from wmkit.latent_action.lit import LatentActionModule

    return LatentActionModule


_stage = make_stage(
    "learn latent actions from action-free video (IGOR/LAPA/Genie); fit|test|probe",
    model_class=_model_class,
)


def probe_main(argv: list[str]) -> int:
    """``wmkit latent-action probe``: linear + MLP probes and the predictiveness curve."""
    parser = argparse.ArgumentParser(
        prog="wmkit latent-action probe",
        description="Probe latent actions against the true actions of labelled episodes: "
        "linear and MLP probes (accuracy / R^2) on held-out episodes, a random-latent "
        "baseline and IGOR's nearest-neighbour predictiveness curve (png).",
    )
    parser.add_argument("--model", required=True, help="save_pretrained directory of the model")
    parser.add_argument("--data", required=True, help="labelled dataset (wmkit, LeRobot)")
    parser.add_argument("--episodes", type=int, default=None, help="use the first N episodes")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="held-out episodes")
    parser.add_argument("--steps", type=int, default=300, help="probe optimisation steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="probe", help="directory for probe.json and the plot")
    args = parser.parse_args(argv)

    from wmkit.core import load_pretrained
    from wmkit.core.data.open_source import open_source
    from wmkit.latent_action.probe import plot_predictiveness, probe_latent_actions

    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be in (0, 1); got {args.test_fraction}")
    model = load_pretrained(args.model)
    source = open_source(args.data)
    n = len(source) if args.episodes is None else min(args.episodes, len(source))
    n_test = max(1, round(n * args.test_fraction))
    if n - n_test < 1:
        parser.error(f"need at least 2 episodes to split train/test; got {n}")
    report = probe_latent_actions(
        model,  # type: ignore[arg-type]
        source,
        range(n - n_test),
        range(n - n_test, n),
        steps=args.steps,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(report.to_dict(), indent=2))
    plot_predictiveness(report.curves, str(out / "predictiveness.png"), report.metric)
    lines = [f"| probe | {report.metric} (held-out) | chance |", "|---|---|---|"]
    for name, r in report.probes.items():
        lines.append(f"| {name} | {r.test_score:.3f} | {r.chance:.3f} |")
    if report.perplexity is not None:
        lines.append(f"\ncode perplexity: {report.perplexity:.2f}")
    lines.append(f"wrote {out / 'probe.json'} and {out / 'predictiveness.png'}")
    print("\n".join(lines))
    return 0


def _run(argv: list[str]) -> int:
    if argv and argv[0] == "probe":
        return probe_main(argv[1:])
    return int(_stage.run(argv) or 0)


command = Command(help=_stage.help, run=_run)
