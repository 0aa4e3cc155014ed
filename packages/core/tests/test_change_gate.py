"""The learned change gate: the network, its loss, the gated world model and its training."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from wmkit.core import ActionSpec, load_pretrained
from wmkit.core.change_gate import ChangeGate, gate_loss
from wmkit.core.change_gate_lit import ChangeGateModule
from wmkit.core.gated_world_model import GatedState, GatedWorldModel
from wmkit.core.testing import check_world_model
from wmkit.core.testing.toy_latent_steps import ToyLatentStepWorldModel
from wmkit.core.testing.toy_lit import MovingSquaresDataModule
from wmkit.core.testing.toys import ToyWorldModel

SPEC = ActionSpec.discrete(5)


def noisy_world(seed: int = 0) -> ToyWorldModel:
    """A toy world model whose untrained output layer changes every frame (a bad model)."""
    torch.manual_seed(seed)
    world = ToyWorldModel(SPEC, hidden=8)
    torch.nn.init.normal_(world.out.weight, std=0.3)
    return world


def test_gate_shapes_and_errors() -> None:
    gate = ChangeGate(SPEC.feature_dim, patch=4)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    feats = SPEC.features(torch.tensor([1, 3]))
    logits = gate(x, x.flip(-1), feats)
    assert logits.shape == (2, 2, 4, 4)  # per block, and the frame's decision in every block
    assert torch.equal(logits[:, 1], logits[:, 1, :1, :1].expand(2, 4, 4))
    with pytest.raises(ValueError, match="divisible by patch=4"):
        gate(x[..., :14], x[..., :14], feats)
    with pytest.raises(ValueError, match="built for 3 channels"):
        gate(x[:, :1], x[:, :1], feats)
    with pytest.raises(ValueError, match="one shape"):
        gate(x, x[:1], feats)
    with pytest.raises(ValueError, match=r"action_features must be \[B=2, 5\]"):
        gate(x, x, feats[:, :3])
    with pytest.raises(ValueError, match=">= 1"):
        ChangeGate(SPEC.feature_dim, patch=0)


def test_select_is_bit_exact_per_block() -> None:
    gate = ChangeGate(SPEC.feature_dim, patch=2)
    anchor, frame = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    blocks = torch.tensor([[[[1.0, -1.0], [-2.0, 0.5]]]])
    out = gate.select(anchor, frame, torch.cat([blocks, torch.ones_like(blocks)], 1))
    assert torch.equal(out[..., :2, :2], frame[..., :2, :2])
    assert torch.equal(out[..., :2, 2:], anchor[..., :2, 2:])
    assert torch.equal(out[..., 2:, :2], anchor[..., 2:, :2])
    assert torch.equal(out[..., 2:, 2:], frame[..., 2:, 2:])
    still = gate.select(anchor, frame, torch.cat([blocks, -torch.ones_like(blocks)], 1))
    assert torch.equal(still, anchor)  # the frame's "nothing changes" keeps every block


def test_gate_loss_prefers_the_frame_closer_to_the_target() -> None:
    gate = ChangeGate(SPEC.feature_dim, patch=2)
    target = torch.rand(2, 3, 4, 4) * 2 - 1
    anchor = target + 0.3
    logits = torch.zeros(2, 2, 2, 2, requires_grad=True)
    gate_loss(gate, anchor, target.clone(), target, logits).backward()
    # raising the logits (taking the exact frame) lowers it; the frame's logit is read once
    assert (logits.grad[:, 0] < 0).all() and (logits.grad[:, 1, 0, 0] < 0).all()
    logits.grad = None
    gate_loss(gate, target.clone(), anchor, target, logits).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1, 0, 0] > 0).all()
    with pytest.raises(ValueError, match="mse_floor must be > 0"):
        gate_loss(gate, anchor, target, target, logits, mse_floor=0.0)


def test_gated_world_model_conformance_and_save_load(tmp_path: Path) -> None:
    gated = GatedWorldModel(noisy_world(), patch=4, width=8, depth=1)
    ctx = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    actions = torch.randint(0, 5, (2, 4))
    check_world_model(gated, ctx, actions)
    gated.save_pretrained(tmp_path / "gated")
    assert (tmp_path / "gated" / "world" / "config.json").is_file()
    loaded = load_pretrained(tmp_path / "gated")
    assert isinstance(loaded, GatedWorldModel)
    assert torch.equal(loaded.rollout(ctx, actions).frames, gated.rollout(ctx, actions).frames)


def test_closed_gate_serves_the_context_frame_exactly() -> None:
    gated = GatedWorldModel(noisy_world(), patch=4, width=8, depth=1)
    torch.nn.init.zeros_(gated.gate.head.weight)
    torch.nn.init.constant_(gated.gate.head.bias, -1.0)
    ctx = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    frames = gated.rollout(ctx, torch.randint(0, 5, (2, 3))).frames
    assert torch.equal(frames, ctx[:, -1:].expand_as(frames))
    world_frames = gated.world.rollout(ctx, torch.randint(0, 5, (2, 3))).frames
    assert not torch.equal(world_frames, ctx[:, -1:].expand_as(world_frames))


def test_gated_world_model_refuses_bad_worlds_and_states() -> None:
    with pytest.raises(ValueError, match="frames_per_step=4"):
        GatedWorldModel(ToyLatentStepWorldModel(SPEC, frames_per_step=4))
    with pytest.raises(TypeError, match="must be a WorldModel"):
        GatedWorldModel(torch.nn.Linear(2, 2))
    gated = GatedWorldModel(noisy_world(), patch=4, width=8, depth=1)
    inner = gated.world.reset(torch.zeros(1, 1, 3, 16, 16))
    with pytest.raises(TypeError, match="from this GatedWorldModel"):
        gated.step(inner, torch.tensor([0]))
    with pytest.raises(FileNotFoundError):
        GatedWorldModel("/nonexistent/world")


def test_loading_refuses_a_pickled_world(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):  # pragma: no cover - must never run
            return (exec, ("raise SystemExit('unpickled')",))

    gated = GatedWorldModel(noisy_world(), patch=4, width=8, depth=1)
    gated.save_pretrained(tmp_path / "gated")
    weights = tmp_path / "gated" / "world" / "model.safetensors"
    weights.unlink()
    (tmp_path / "gated" / "world" / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(Exception) as info:
        load_pretrained(tmp_path / "gated")
    assert "unpickled" not in str(info.value)


def test_training_the_gate_beats_the_bad_world_model() -> None:
    import lightning as L

    torch.manual_seed(0)
    data = MovingSquaresDataModule(num_episodes=24, length=8, size=16, batch_size=8)
    module = ChangeGateModule(GatedWorldModel(noisy_world(), patch=4, width=16, depth=1),
                              context=2, horizon=6, lr=1e-2)  # fmt: skip
    trainer = L.Trainer(max_steps=40, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, data)
    (res,) = trainer.test(module, data, verbose=False)
    assert res["test/psnr_frame_gated"] > res["test/psnr_frame_model"] + 3
    assert 0.0 <= res["test/taken"] < 1.0
    with pytest.raises(ValueError, match="context \\+ horizon = 9"):
        ChangeGateModule(module.model, context=3, horizon=6)._rollout(
            {"frames": torch.zeros(1, 8, 3, 16, 16), "actions": torch.zeros(1, 7, dtype=torch.long)}
        )
    assert isinstance(module.model.reset(torch.zeros(1, 1, 3, 16, 16)), GatedState)
