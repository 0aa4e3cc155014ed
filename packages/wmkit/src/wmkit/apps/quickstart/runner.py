"""Run the quickstart's steps, each resumable: record → tokenizer → world model → change gate
→ evaluation.

A step that finished is recorded in ``OUT/quickstart_state.json`` and skipped on a rerun;
a training step killed midway resumes from its ``last.ckpt`` (Lightning restores model,
optimiser and step, ``ResumableLoader`` the place in the data, ``RandomStateCheckpoint`` the
random generators: it ends with the weights of an uninterrupted run); recording resumes at its
first missing episode. So ``wmkit quickstart`` killed at any point and run again carries on
where it stopped.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from wmkit.apps.quickstart.plan import QuickstartPlan

__all__ = ["QuickstartResult", "latent_scale", "run_quickstart"]

STEPS = ("record", "tokenizer", "world", "gate", "evaluate")
#: plan settings added after runs were made: a saved run without one resumes (and runs the
#: steps it adds)
ADDED_SETTINGS = ("gate_steps",)


@dataclass
class QuickstartResult:
    """Where everything went and what the evaluation measured."""

    out: Path
    dataset: Path
    tokenizer_dir: Path
    world_dir: Path
    report_dir: Path
    gated_dir: Path | None
    configs: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def served_dir(self) -> Path:
        """The model the quickstart evaluates and plays: the gated world model when the plan
        trains a gate, else the world model."""
        return self.gated_dir or self.world_dir


class _State:
    def __init__(self, path: Path, plan: QuickstartPlan) -> None:
        self.path = path
        self.data: dict[str, Any] = {"plan": plan.to_dict(), "done": {}, "durations": {}}
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("plan") != self.data["plan"]:
                differ = sorted(
                    k
                    for k in self.data["plan"]
                    if saved["plan"].get(k) != self.data["plan"][k]
                    and not (k in ADDED_SETTINGS and k not in saved["plan"])
                )
                raise ValueError(
                    f"{path.parent} holds a quickstart run with other settings "
                    f"({', '.join(differ)}); use another --out or delete it"
                )
            self.data = saved

    def done(self, step: str) -> bool:
        return bool(self.data["done"].get(step))

    def finish(self, step: str, seconds: float, **info: Any) -> None:
        self.data["done"][step] = info or True
        self.data["durations"][step] = self.data["durations"].get(step, 0.0) + seconds
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def _fit(
    config_path: Path, ckpt_dir: Path, export_dir: Path, log: Callable[[str], None] = print
) -> Any:
    from wmkit.core import run_stage

    args = ["fit", "-c", str(config_path), f"--export_dir={export_dir}"]
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        step = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"]
        log(f"      resuming at step {step} from {last}")
        args.append(f"--ckpt_path={last}")
    with warnings.catch_warnings():
        # The tokenizer modules optimise manually; Lightning then warns that step checkpoints
        # hold the weights after the step, which is what resuming needs (the counter matches).
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        return run_stage(None, None, args, save_config_callback=None)


def _write_yaml(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_quickstart(plan: QuickstartPlan, log: Callable[[str], None] = print) -> QuickstartResult:
    """Run (or resume) every step of ``plan``; returns the result with the metrics."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out / "quickstart_state.json", plan)
    result = QuickstartResult(
        out=out,
        dataset=plan.dataset,
        tokenizer_dir=out / "tokenizer",
        world_dir=out / "world",
        report_dir=out / "report",
        gated_dir=out / "gated" if plan.gated else None,
        configs={
            "tokenizer": out / "configs" / "tokenizer.yaml",
            "world": out / "configs" / "world.yaml",
            "gate": out / "configs" / "gate.yaml",
        },
    )
    torch.manual_seed(plan.seed)
    if not plan.device.startswith("cuda"):
        # Tiny models on a small CPU: intra-op threads cost more in synchronisation than they
        # gain, and on a shared machine 2 threads measured 25x slower than 1 (0.25 vs 6.4 s
        # per tokenizer step).
        torch.set_num_threads(plan.threads)
    _data_step(plan, state, log)
    _tokenizer_step(plan, state, result, log)
    if _world_step(plan, state, result, log):
        _gate_step(plan, state, result, log)
        _evaluate_step(plan, state, result, log)
        result.metrics = state.data["done"]["evaluate"]
    result.durations = dict(state.data["durations"])
    return result


def _data_step(plan: QuickstartPlan, state: _State, log: Callable[[str], None]) -> None:
    """Step 1: use the given dataset, or record ``plan.episodes`` episodes of ``plan.env``
    (skipped when a previous run finished it; ``record`` itself resumes a partial one)."""
    if plan.data is not None:
        log(f"[1/5] training on {plan.dataset} ({plan.data_kind}) at {plan.resolution}²")
    elif not state.done("record"):
        from wmkit.core.data.record import record

        log(
            f"[1/5] recording {plan.episodes} {plan.env} episodes at {plan.resolution}² "
            f"into {plan.dataset} (reused if already there)"
        )
        start = time.perf_counter()
        record(
            plan.env,
            plan.dataset,
            plan.episodes,
            resolution=plan.resolution,
            seed=plan.seed,
            policy=plan.policy,
            frame_format="npz",
            max_steps=plan.max_steps,
        )
        state.finish("record", time.perf_counter() - start)
    else:
        log(f"[1/5] dataset ready: {plan.dataset}")


def _tokenizer_step(
    plan: QuickstartPlan, state: _State, result: QuickstartResult, log: Callable[[str], None]
) -> None:
    """Step 2: write the tokenizer config and train (or resume) it; for a diffusion world
    model, also measure the latent scale its config needs and keep it in the state."""
    configs = result.configs
    _write_yaml(configs["tokenizer"], plan.tokenizer_config())
    if state.done("tokenizer"):
        log(f"[2/5] tokenizer ready: {result.tokenizer_dir}")
        return
    log(f"[2/5] training the tokenizer: wmkit tokenizer fit -c {configs['tokenizer']}")
    start = time.perf_counter()
    _fit(configs["tokenizer"], plan.out / "checkpoints" / "tokenizer", result.tokenizer_dir, log)
    if not (result.tokenizer_dir / "config.json").is_file():
        raise RuntimeError(f"the tokenizer stage did not export {result.tokenizer_dir}")
    info = {}
    if plan.world == "diffusion":
        info["latent_scale"] = latent_scale(plan, result.tokenizer_dir)
    state.finish("tokenizer", time.perf_counter() - start, **info)


def _world_step(
    plan: QuickstartPlan, state: _State, result: QuickstartResult, log: Callable[[str], None]
) -> bool:
    """Step 3: write the world-model config and train (or resume) it. Returns ``False``
    (after saying why) when the dataset has no actions, so there is no world model to train
    or evaluate."""
    from wmkit.core.data.open_source import open_source

    configs = result.configs
    options = plan.data_options()
    spec = open_source(
        plan.dataset, options.get("kind", "auto"), **options.get("source_kwargs", {})
    ).action_spec
    if spec is None:
        log(
            f"[3/5] {plan.dataset} has no actions, so no world model is trained on it: train "
            "a latent-action model on it (wmkit latent-action fit) to get actions, or use a "
            "dataset with actions"
        )
        return False
    tokenizer_info = state.data["done"]["tokenizer"]
    scale = tokenizer_info.get("latent_scale", 1.0) if isinstance(tokenizer_info, dict) else 1.0
    _write_yaml(configs["world"], plan.world_config(spec.to_dict(), latent_scale=scale))
    if not state.done("world"):
        stage = "diffusion-world" if plan.world == "diffusion" else "ar-world"
        log(f"[3/5] training the world model: wmkit {stage} fit -c {configs['world']}")
        start = time.perf_counter()
        _fit(configs["world"], plan.out / "checkpoints" / "world", result.world_dir, log)
        if not (result.world_dir / "config.json").is_file():
            raise RuntimeError(f"the world-model stage did not export {result.world_dir}")
        state.finish("world", time.perf_counter() - start)
    else:
        log(f"[3/5] world model ready: {result.world_dir}")
    return True


def _gate_step(
    plan: QuickstartPlan, state: _State, result: QuickstartResult, log: Callable[[str], None]
) -> None:
    """Step 4: train (or resume) the change gate that serves the world model's frames
    (``plan.gated``), exported to ``result.gated_dir``."""
    if result.gated_dir is None:
        reason = "gate_steps=0" if plan.gate_steps == 0 else "several frames per step"
        log(f"[4/5] no change gate ({reason}): the world model's frames are served as they are")
        return
    from wmkit.apps.quickstart.gate_config import gate_config

    config = _write_yaml(result.configs["gate"], gate_config(plan, result.world_dir))
    if state.done("gate"):
        log(f"[4/5] change gate ready: {result.gated_dir}")
        return
    log(f"[4/5] training the change gate: wmkit gate fit -c {config}")
    start = time.perf_counter()
    _fit(config, plan.out / "checkpoints" / "gate", result.gated_dir, log)
    if not (result.gated_dir / "config.json").is_file():
        raise RuntimeError(f"the gate stage did not export {result.gated_dir}")
    state.finish("gate", time.perf_counter() - start)


def _evaluate_step(
    plan: QuickstartPlan, state: _State, result: QuickstartResult, log: Callable[[str], None]
) -> None:
    """Step 5: evaluate rollouts on held-out episodes, unless a previous run evaluated the same
    served model; the metrics are kept in the state, which is where the result reads them
    from."""
    done = state.data["done"].get("evaluate")
    if isinstance(done, dict) and done.get("served") == str(result.served_dir):
        return
    log(
        f"[5/5] evaluating rollouts on held-out episodes ({plan.context} context frames, "
        f"{plan.horizon} predicted)"
    )
    start = time.perf_counter()
    metrics = _evaluate(plan, result)
    state.finish("evaluate", time.perf_counter() - start, **metrics)


def latent_scale(plan: QuickstartPlan, tokenizer_dir: Path, batches: int = 8) -> float:
    """The ``latent_scale`` of the diffusion world model: the tokenizer's latent frame changes
    brought to the size of pixel changes (``latent_change_scale``), on ``batches`` training
    batches of the world model's clips (``1 + 4n`` frames for ``vidtok-4x``, whose latent
    changes then span 4 frames: the world model's step)."""
    from itertools import islice

    from wmkit.core import load_pretrained
    from wmkit.core.data.datamodule import EpisodeDataModule
    from wmkit.diffusion_world import latent_change_scale

    tokenizer = load_pretrained(tokenizer_dir, map_location=plan.device)
    data = EpisodeDataModule(
        str(plan.dataset), clip_length=plan.world_clip, batch_size=plan.batch_size,
        split=(0.8, 0.1, 0.1), seed=plan.seed, **plan.data_options(),
    )  # fmt: skip
    data.setup("fit")
    videos = (b["frames"].to(plan.device) for b in islice(data.train_dataloader(), batches))
    return latent_change_scale(tokenizer, videos)


def _evaluate(plan: QuickstartPlan, result: QuickstartResult) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from wmkit.core import load_pretrained
    from wmkit.core.data.clip_dataset import ClipDataset
    from wmkit.core.data.datamodule import EpisodeDataModule
    from wmkit.eval import evaluate_rollouts, score_heads_one_step, write_report
    from wmkit.eval.frame_metrics import lpips_if_available

    device = torch.device(plan.device)
    world = load_pretrained(result.served_dir, map_location=device)
    tokenizer = load_pretrained(result.tokenizer_dir, map_location=device)
    data = EpisodeDataModule(
        str(plan.dataset),
        clip_length=plan.context + plan.horizon,
        batch_size=plan.batch_size,
        split=(0.8, 0.1, 0.1),
        seed=plan.seed,
        **plan.data_options(),
    )
    data.setup("test")
    lpips = lpips_if_available("alex", device)

    def evaluate(model: Any, with_tokenizer: bool) -> Any:
        return evaluate_rollouts(
            model, data.test_dataloader(), context=plan.context, horizon=plan.horizon,
            tokenizer=tokenizer if with_tokenizer else None, lpips=lpips,
            max_batches=plan.eval_batches, seed=plan.seed, device=device,
        )  # fmt: skip

    evaluation = evaluate(world, with_tokenizer=True)
    if evaluation.heads:  # the heads again on every held-out transition, from its real past
        test = data.datasets["test"]
        windows = ClipDataset(test.source, clip_length=plan.context + 1, mode="sequential",
                              episodes=test.episodes, stride=1,
                              resolution=plan.data_options().get("resolution"))  # fmt: skip
        evaluation.heads["one_step"] = score_heads_one_step(
            world, DataLoader(windows, batch_size=plan.batch_size), context=plan.context,
            seed=plan.seed, device=device,
        )  # fmt: skip
    write_report(
        evaluation,
        result.report_dir,
        title=f"wmkit quickstart: {plan.dataset.name if plan.data else plan.env}",
        info={"plan": plan.to_dict()},
    )
    overall = evaluation.overall
    image = ("psnr", "psnr_frame_mean", "ssim", "lpips")
    alone: dict[str, Any] = {}
    if result.gated_dir is not None:  # the world model without its gate, for comparison
        bare = evaluate(world.world, with_tokenizer=False)
        alone = {m: bare.overall["model"].get(m) for m in image}
        alone["delta_psnr"] = bare.controllability["delta_psnr"]
    return {
        "served": str(result.served_dir),
        "world_alone": alone,
        **{m: overall["model"].get(m) for m in image},
        **{f"copy_last_{m}": overall["copy_last_frame"].get(m) for m in image},
        **{f"reconstruction_{m}": overall.get("tokenizer_recon", {}).get(m) for m in image},
        "beats_copy_last": evaluation.beats(),
        "verdict": evaluation.verdict(),
        "delta_psnr": evaluation.controllability["delta_psnr"],
        "reward_mse": evaluation.heads.get("reward_mse"),
        "reward_mse_zero": evaluation.heads.get("reward_mse_zero"),
        "reward_mse_one_step": evaluation.heads.get("one_step", {}).get("reward_mse"),
        "reward_mse_zero_one_step": evaluation.heads.get("one_step", {}).get("reward_mse_zero"),
        "table": evaluation.markdown_table(),
    }
