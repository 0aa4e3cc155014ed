"""What ``test_v0_1_fixtures.py`` checks of a saved 0.1.x ``DiffusionWorldModel``, and how the
fixtures under ``fixtures/v0_1/`` were made: running this file on the 0.1.x code
(``uv run python packages/diffusion-world/tests/diffusion_v0_1_outputs.py``) rewrites them.

Each case is a tiny model with random weights saved by ``save_pretrained``; ``outputs`` records,
under fixed seeds, its rollout, its ``reset``/``step`` outputs and its training losses on a fixed
batch, using the public API only, so the same function run on a later version's load of the
directory must give bit-identical tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyTokenizer, moving_squares

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1"
SPEC = ActionSpec.discrete(5)
_NET = {"hidden_size": 16, "depth": 1, "num_heads": 2, "patch_size": 2}

CASES: dict[str, dict[str, Any]] = {
    "ddpm": {
        "num_sampling_steps": 2, "guidance_scale": 1.5, "context_window": 4,
    },
    "ddpm_noisy_history": {
        "prediction_type": "epsilon", "sampler": "euler", "num_train_timesteps": 100,
        "beta_schedule": "linear", "history_noise_level": 20, "clean_history_prob": 0.25,
        "history_cache": False, "num_sampling_steps": 2, "context_window": 3,
    },
    "edm_residual_heads_carry": {
        "objective": "edm", "residual": True, "sigma_data": 0.1, "num_sampling_steps": 1,
        "context_window": 4, "carry_history": True, "reward_head": True, "done_head": True,
        "reward_hidden": 8,
    },
    "flow_residual_reward": {
        "objective": "flow", "residual": True, "sigma_data": 0.25, "flow_shift": 3.0,
        "num_sampling_steps": 2, "guidance_scale": 2.0, "context_window": 4,
        "reward_head": True, "reward_hidden": 8,
    },
    "edm_latent_anchored": {
        "objective": "edm", "image_size": 4, "latent_scale": 2.0, "anchored_decoding": True,
        "num_sampling_steps": 2, "context_window": 4,
        "network_kwargs": {**_NET, "patch_size": 1},
    },
}  # fmt: skip


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed clip batch: frames [2, 6, 3, 8, 8], actions [2, 6], rewards and dones [2, 6]."""
    eps = moving_squares(num_episodes=2, length=6, size=8, seed=0)
    frames, actions = to_float_video(eps.frames), torch.from_numpy(eps.actions)
    rewards = torch.linspace(-1, 1, 12).reshape(2, 6)
    dones = torch.zeros(2, 6)
    dones[1, 3] = 1.0
    return frames, actions, rewards, dones


def outputs(model: Any) -> dict[str, torch.Tensor]:
    """The recorded tensors of ``model`` (in eval mode on return)."""
    frames, actions, rewards, dones = batch()
    out: dict[str, torch.Tensor] = {}
    model.eval()
    torch.manual_seed(1)
    roll = model.rollout(frames[:, :2], actions[:, 1:6])
    out["rollout.frames"] = roll.frames
    for key in ("rewards", "dones"):
        if getattr(roll, key, None) is not None:
            out[f"rollout.{key}"] = getattr(roll, key)
    torch.manual_seed(2)
    state = model.reset(frames[:, :2], actions[:, :1])
    for i in range(3):
        step = model.step(state, actions[:, 2 + i])
        state = step.state
        out[f"step{i}.frame"] = step.frame
        if step.reward is not None:
            out[f"step{i}.reward"] = step.reward
        if step.done is not None:
            out[f"step{i}.done"] = step.done
    for mode, seed in (("train", 3), ("eval", 4)):
        model.train(mode == "train")
        torch.manual_seed(seed)
        loss = model.loss(frames, actions)
        out[f"loss_{mode}.loss"] = loss.loss.detach()
        out[f"loss_{mode}.timesteps"] = loss.timesteps
        for k, v in loss.logs.items():
            out[f"loss_{mode}.{k}"] = v.detach()
    model.eval()
    if model.reward_head is not None:
        out["reward_loss"] = model.reward_loss(frames, actions, rewards).detach()
    if model.done_head is not None:
        out["done_loss"] = model.done_loss(frames, actions, dones).detach()
    torch.manual_seed(5)
    for k, v in model.generated_head_losses(frames, actions, rewards, dones).items():
        out[f"generated.{k}"] = v.detach()
    return {k: v.contiguous() for k, v in out.items()}


if __name__ == "__main__":  # pragma: no cover
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from diffusion_helpers import randomised

    from wmkit.diffusion_world import DiffusionWorldModel

    torch.set_num_threads(1)
    for name, kwargs in CASES.items():
        kwargs = {"image_size": 8, "network_kwargs": _NET, **kwargs}
        directory = FIXTURES / name
        shutil.rmtree(directory, ignore_errors=True)
        if "tokenizer" not in kwargs and kwargs.get("anchored_decoding"):
            tok = ToyTokenizer(patch=2, channels=3, kind="continuous")
            tok.save_pretrained(FIXTURES / "_tok")
            kwargs["tokenizer"] = str(FIXTURES / "_tok")
        torch.manual_seed(0)
        model = randomised(DiffusionWorldModel(SPEC, **kwargs), std=0.2)
        model.save_pretrained(directory)
        shutil.rmtree(FIXTURES / "_tok", ignore_errors=True)
        loaded = DiffusionWorldModel.from_pretrained(directory)
        save_file(outputs(loaded), str(directory / "outputs.safetensors"))
        (directory / "README.md").unlink(missing_ok=True)
        print(name, sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()))
