"""``DiamondModule``: the reward/end model learns a fixed batch with rewards and dones, each part
(denoiser, reward/end, upsampler) trains alone or together with its losses logged apart, and a
converted DIAMOND fixture fine-tunes through the module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from wmkit.core.testing import (
    check_config_runs,
    check_loss_decreases,
    cpu_trainer,
    needs_parity,
    parity_dir,
)
from wmkit.diffusion_world.convert_diamond import convert_diamond_agent, read_diamond_checkpoint
from wmkit.diffusion_world.diamond import DIAMOND_NETWORK_SIZES, DiamondWorldModel
from wmkit.diffusion_world.diamond.lit import DiamondModule

PARITY = parity_dir("diamond")

REW_END = {
    "class_path": "wmkit.diffusion_world.diamond.DiamondRewardEnd",
    "init_args": {"config": {
        "num_actions": 5, "lstm_dim": 16, "img_size": 16, "cond_channels": 8,
        "depths": [1, 1], "channels": [4, 4], "attn_depths": [0, 0],
    }},
}  # fmt: skip


def tiny_world(upsampler: bool = False) -> DiamondWorldModel:
    up = None
    if upsampler:  # 8x8 -> 16x16
        net = {**DIAMOND_NETWORK_SIZES["tiny"], "num_steps_conditioning": 1}
        up = {"network": net, "factor": 2, "sampler": {"num_steps_denoising": 1}}
    return DiamondWorldModel(
        {"kind": "discrete", "n": 5},
        network=DIAMOND_NETWORK_SIZES["tiny"],
        sampler={"num_steps_denoising": 1},
        upsampler=up,
        reward_end=None if upsampler else REW_END,
    )


def batch(b: int = 4, t: int = 7, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Clips whose reward sign and end flag are functions of the transition, so learnable:
    the reward is +1 after action 1, -1 after action 2, 0 otherwise; action 3 ends it."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(b, t, 3, size, size, generator=g) * 2 - 1
    actions = torch.randint(0, 5, (b, t), generator=g)
    rewards = (actions == 1).float() * 3.0 - (actions == 2).float() * 0.5
    return {"frames": frames, "actions": actions, "rewards": rewards, "dones": actions == 3}


def test_reward_end_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    module = DiamondModule(tiny_world(), components=["rew_end_model"])
    data = batch()
    before, after = check_loss_decreases(
        module.trainable_parameters(), lambda: module.losses(data)["rew_end_loss"], 60,
        factor=0.5, lr=3e-3,
    )  # fmt: skip
    assert after < 0.5 * before


def test_parts_train_alone_or_together_with_their_losses_apart():
    torch.manual_seed(0)
    world = tiny_world()
    both = DiamondModule(world)
    assert both.components == ["denoiser", "rew_end_model"]
    logs = both.losses(batch())
    assert set(logs) == {"loss", "denoiser_loss", "rew_end_loss", "rew_loss", "end_loss"}
    assert torch.allclose(logs["rew_end_loss"], logs["rew_loss"] + logs["end_loss"])
    only_rew = DiamondModule(world, components=["rew_end_model"])
    assert set(only_rew.losses(batch())) == {"loss", "rew_end_loss", "rew_loss", "end_loss"}
    assert {id(p) for p in only_rew.trainable_parameters()} == {
        id(p) for p in world.rew_end_model.parameters()
    }
    only_den = DiamondModule(world, components=["denoiser"], autoregressive_steps=2)
    assert set(only_den.losses(batch())) == {"loss", "denoiser_loss"}
    # a training run of the reward/end model alone leaves the denoiser as it was
    den = {k: v.clone() for k, v in world.denoiser.state_dict().items()}
    rew = {k: v.clone() for k, v in world.rew_end_model.state_dict().items()}
    loader = DataLoader([batch(seed=s) for s in range(2)], batch_size=None)
    cpu_trainer(max_steps=2, limit_val_batches=0).fit(
        DiamondModule(world, components=["rew_end_model"], warmup_steps=0, lr=1e-2), loader
    )
    assert all(torch.equal(v, world.denoiser.state_dict()[k]) for k, v in den.items())
    assert any(not torch.equal(v, world.rew_end_model.state_dict()[k]) for k, v in rew.items())


def test_reward_end_targets_and_masks():
    torch.manual_seed(0)
    module = DiamondModule(tiny_world(), components=["rew_end_model"], reward_end_length=4)
    data = batch()
    got = module.losses(data)["rew_end_loss"]
    world = module.model
    want = world.rew_end_model.loss(
        data["frames"][:, :3], data["actions"][:, :3], data["frames"][:, 1:4],
        data["rewards"][:, :3], data["dones"][:, :3],
    ).loss  # fmt: skip
    assert torch.allclose(got, want)
    # a masked step (the padded step of a clip ending on the final observation) is left out
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 2] = False
    masked = module.losses({**data, "step_mask": mask})["rew_end_loss"]
    want = world.rew_end_model.loss(
        data["frames"][:, :2], data["actions"][:, :2], data["frames"][:, 1:3],
        data["rewards"][:, :2], data["dones"][:, :2],
    ).loss  # fmt: skip
    assert torch.allclose(masked, want)
    # no dones: no step is terminal
    no_done = {k: v for k, v in data.items() if k != "dones"}
    zero = {**data, "dones": torch.zeros(4, 7, dtype=torch.bool)}
    assert torch.equal(module.losses(no_done)["end_loss"], module.losses(zero)["end_loss"])


def test_bad_options_and_batches_are_refused():
    world = tiny_world()
    with pytest.raises(ValueError, match="components"):
        DiamondModule(world, components=["upsampler"])
    with pytest.raises(ValueError, match="components"):
        DiamondModule(world, components=["actor_critic"])
    with pytest.raises(ValueError, match="max_grad_norms"):
        DiamondModule(world, max_grad_norms={"denoiser": 0.0})
    module = DiamondModule(world, components=["rew_end_model"])
    with pytest.raises(ValueError, match="rewards"):
        module.losses({k: v for k, v in batch().items() if k != "rewards"})
    with pytest.raises(ValueError, match="actions"):
        module.losses({"frames": batch()["frames"]})


def test_upsampler_trains_on_pairs_made_from_full_resolution_frames():
    torch.manual_seed(0)
    world = tiny_world(upsampler=True)
    module = DiamondModule(world, components=["upsampler"], upsampler_steps=2)
    data = batch(t=4)
    logs = module.losses(data)
    assert set(logs) == {"loss", "upsampler_loss"}
    # the same loss by hand: low resolution by reset's resize, the upsampler's own conditioning
    torch.manual_seed(1)
    got = module.losses(data)["upsampler_loss"]
    torch.manual_seed(1)
    full = data["frames"][:, :3]
    want = world.upsampler.loss(full, None, low_res=world.low_res(full)).loss
    assert torch.equal(got, want)
    check_loss_decreases(
        module.trainable_parameters(), lambda: module.losses(data)["upsampler_loss"], 40,
        factor=0.7, lr=3e-3, train_seed=0, eval_seed=0,
    )  # fmt: skip
    # the denoiser of an upsampled world trains on the low-resolution copies
    logs = DiamondModule(world, autoregressive_steps=1).losses(batch(t=5))
    assert set(logs) == {"loss", "denoiser_loss", "upsampler_loss"}


@needs_parity("diamond")
def test_converted_fixture_fine_tunes_through_the_module():
    torch.manual_seed(0)
    state = read_diamond_checkpoint(PARITY / "atari" / "agent.pt")
    config = yaml.safe_load((PARITY / "atari" / "config.yaml").read_text())
    world = convert_diamond_agent(state, agent_config=config, policy=False).world
    assert world.rew_end_model is not None
    n = world.action_spec.n
    before = {k: v.clone() for k, v in world.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    clips = DataLoader([
        {
            "frames": torch.rand(2, 6, 3, 64, 64, generator=g) * 2 - 1,
            "actions": torch.randint(0, n, (2, 6), generator=g),
            "rewards": torch.randint(-1, 2, (2, 6), generator=g).float(),
            "dones": torch.zeros(2, 6, dtype=torch.bool),
        }
        for _ in range(2)
    ], batch_size=None)  # fmt: skip
    module = DiamondModule(world, warmup_steps=0, max_grad_norms={"denoiser": 1.0})
    trainer = cpu_trainer(fast_dev_run=2)
    trainer.fit(module, clips, clips)
    metrics = trainer.callback_metrics
    for key in ("train/denoiser_loss", "train/rew_end_loss", "val/psnr"):
        assert torch.isfinite(metrics[key]), key
    after = world.state_dict()
    for part in ("denoiser.", "rew_end_model."):
        assert any(not torch.equal(v, after[k]) for k, v in before.items() if k.startswith(part))


def test_upsampler_config_trains_both_stages(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "diamond-upsampler-tiny.yaml"
    (fit,) = check_config_runs(config, tmp_path, subcommands=("fit",))
    assert fit.model.components == ["denoiser", "upsampler"]
    assert fit.model.model.upsampling_factor == 5
    metrics = fit.trainer.callback_metrics
    for key in ("train/denoiser_loss", "train/upsampler_loss", "val/psnr"):
        assert torch.isfinite(metrics[key]), key


def test_max_grad_norms_clip_each_part_on_its_own():
    torch.manual_seed(0)
    world = tiny_world()
    module = DiamondModule(world, max_grad_norms={"rew_end_model": 1e-3})
    module.losses(batch())["loss"].backward()

    def norm(part: torch.nn.Module) -> float:
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    den_before = norm(world.denoiser)
    assert norm(world.rew_end_model) > 1e-3
    module.on_before_optimizer_step(None)
    assert norm(world.rew_end_model) <= 1e-3 * (1 + 1e-4)
    assert norm(world.denoiser) == den_before  # not clipped: no norm given for it
