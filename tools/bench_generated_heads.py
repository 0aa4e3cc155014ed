"""Reward heads trained on real vs generated next frames, with the diffusion network held fixed.

    uv run python tools/bench_generated_heads.py --world runs/quickstart/world \\
        --data runs/data/crafter-32-explore-48x120-seed0

Loads a trained ``DiffusionWorldModel`` (e.g. the quickstart's ``world/``), and for each
setting trains *fresh* reward and done heads (same initialisation) for ``--steps`` steps on
the training split, with the world model's own network frozen:

- ``real``: ``reward_loss`` / ``done_loss`` on real next frames (``generated_head_weight=0``);
- ``real+gen w``: plus ``w`` times ``generated_head_losses``, the heads on a next frame the
  model samples from the real past (``DiffusionForcingModule(generated_head_weight=w)``);
- ``gen``: the generated-frame losses alone.

Then it scores each on every held-out transition one step from its real past
(``wmkit.eval.score_heads_one_step``, generated next frames, as in ``step``) and on the real
next frames, against predicting 0. Last, it times whole training steps of
``DiffusionForcingModule`` (diffusion loss, heads, AdamW) with ``generated_head_weight`` 0 and
the largest ``--weights`` (interleaved repeats, on a copy of the model), which is what the
option costs. Prints Markdown tables and writes the numbers to ``--out`` (JSON). The split
matches the quickstart's (0.8/0.1/0.1, ``--seed``).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from wmkit.core import load_pretrained
from wmkit.core.data.clip_dataset import ClipDataset
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.diffusion_world import DiffusionWorldModel, TransitionHeads
from wmkit.diffusion_world.lit import DiffusionForcingModule
from wmkit.eval import score_heads_one_step


def train_heads(
    world: DiffusionWorldModel,
    data: EpisodeDataModule,
    *,
    real_weight: float,
    generated_weight: float,
    steps: int,
    hidden: int,
    seed: int,
) -> float:
    """Fresh heads on ``world`` trained ``steps`` steps → seconds taken."""
    torch.manual_seed(seed)
    world.heads = TransitionHeads(world.action_spec, world.channels, True, True, hidden)
    world.requires_grad_(False)
    heads = [*world.heads.parameters()]
    for p in heads:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(heads, lr=2e-3)
    start, done, batches = time.perf_counter(), 0, iter(())
    world.train()
    while done < steps:
        batch = next(batches, None)
        if batch is None:
            batches = iter(data.train_dataloader())
            continue
        frames, actions = batch["frames"], batch["actions"]
        with torch.no_grad():
            latents = world.encode(frames)
        loss = real_weight * (
            world.reward_loss(frames, actions, batch["rewards"], latents)
            + world.done_loss(frames, actions, batch["dones"], latents)
        )
        if generated_weight > 0:
            generated = world.generated_head_losses(
                frames, actions, batch["rewards"], batch["dones"], latents
            )
            loss = loss + generated_weight * sum(generated.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
    return time.perf_counter() - start


@torch.no_grad()
def real_next_reward_mse(world: DiffusionWorldModel, windows: ClipDataset) -> float:
    """The reward head's MSE on the held-out transitions with the *real* next frame."""
    total, count = 0.0, 0
    for batch in DataLoader(windows, batch_size=64):
        x = world.encode(batch["frames"])
        keep = batch["step_mask"][:, -2].bool() if "step_mask" in batch else slice(None)
        pred = world.reward_head(x[:, -2], x[:, -1], batch["actions"][:, -2])
        err = (pred - batch["rewards"][:, -2].float())[keep].square()
        total, count = total + err.sum().item(), count + err.numel()
    return total / max(count, 1)


def step_cost(
    world: DiffusionWorldModel, batches: list, weights: tuple[float, ...], repeats: int
) -> dict[float, list[float]]:
    """Milliseconds per whole training step (``DiffusionForcingModule.training_step``, backward,
    AdamW) for each ``generated_head_weight`` in ``weights``, ``repeats`` interleaved passes
    over ``batches``, on a copy of ``world`` whose network and heads all train."""
    model = copy.deepcopy(world).requires_grad_(True).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    out: dict[float, list[float]] = {w: [] for w in weights}
    for _ in range(repeats):
        for weight in weights:
            module = DiffusionForcingModule(model, generated_head_weight=weight)
            module.log = module.log_dict = lambda *a, **k: None  # no trainer attached
            start = time.perf_counter()
            for batch in batches:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    loss = module.training_step(batch, 0)
                opt.zero_grad()
                loss.backward()
                opt.step()
            out[weight].append((time.perf_counter() - start) / len(batches) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True, help="saved DiffusionWorldModel")
    parser.add_argument("--data", type=Path, required=True, help="its recorded dataset")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--context", type=int, default=2, help="real frames before each step")
    parser.add_argument("--clip-length", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=32, help="heads' width (the quickstart's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timed-steps", type=int, default=60, help="steps per timing repeat")
    parser.add_argument("--out", type=Path, default=Path("results/bench_generated_heads.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    world = load_pretrained(args.world)
    if not isinstance(world, DiffusionWorldModel):
        raise SystemExit(f"{args.world} holds a {type(world).__name__}, not a DiffusionWorldModel")
    data = EpisodeDataModule(
        str(args.data), clip_length=args.clip_length, batch_size=8, split=(0.8, 0.1, 0.1),
        seed=args.seed, with_steps=True,
    )  # fmt: skip
    data.setup("fit")
    data.setup("test")
    test = data.datasets["test"]
    windows = ClipDataset(test.source, clip_length=args.context + 1, mode="sequential",
                          episodes=test.episodes, stride=1)  # fmt: skip

    settings = [("real", 1.0, 0.0)]
    settings += [(f"real+gen w={w:g}", 1.0, w) for w in args.weights]
    settings += [("gen", 0.0, 1.0)]
    rows = []
    for name, real_weight, generated_weight in settings:
        seconds = train_heads(
            world, data, real_weight=real_weight, generated_weight=generated_weight,
            steps=args.steps, hidden=args.hidden, seed=args.seed,
        )  # fmt: skip
        world.eval()
        one_step = score_heads_one_step(
            world, DataLoader(windows, batch_size=8), context=args.context, seed=args.seed
        )
        rows.append({
            "heads trained on": name,
            "reward_mse_one_step": one_step["reward_mse"],
            "reward_mse_zero": one_step["reward_mse_zero"],
            "reward_mse_real_next": real_next_reward_mse(world, windows),
            "done_accuracy_one_step": one_step.get("done_accuracy"),
            "transitions": one_step["transitions"],
            "train_s": seconds,
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    print(f"\n{platform.machine()}, {args.threads} torch thread(s), {args.steps} steps per setting")
    print("| heads trained on | reward MSE one step (generated) | reward MSE real next frame "
          "| always 0 | done accuracy | train s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['heads trained on']} | {r['reward_mse_one_step']:.4f} "
            f"| {r['reward_mse_real_next']:.4f} | {r['reward_mse_zero']:.4f} "
            f"| {r['done_accuracy_one_step']:.3f} | {r['train_s']:.0f} |"
        )
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(min(args.timed_steps, len(data.train_dataloader())))]
    weights = (0.0, max(args.weights))
    cost = step_cost(world, batches, weights, repeats=3)
    print(f"\nwhole training step (DiT + heads + AdamW), ms, {len(batches)} steps x 3 repeats:")
    for weight, ms in cost.items():
        print(f"- generated_head_weight={weight:g}: {', '.join(f'{m:.0f}' for m in ms)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "rows": rows, "step_ms": cost}, indent=2))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
