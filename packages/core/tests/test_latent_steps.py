"""k-frame latent steps: action grouping, context trimming, the buffered ``step`` contract and
its conformance checks (wmkit.core.latent_steps)."""

from __future__ import annotations

import pytest
import torch

from wmkit.core import (
    ActionSpec,
    group_actions,
    num_latent_steps,
    step_action_spec,
    trim_context,
)
from wmkit.core.testing import (
    ToyLatentStepWorldModel,
    ToyTokenizer,
    ToyVideoTokenizer,
    check_tokenizer,
    check_world_model,
    moving_squares,
)
from wmkit.core.video import to_float_video


def _video(batch: int, length: int) -> torch.Tensor:
    return to_float_video(moving_squares(batch, length, 16, seed=3).frames)


def test_step_action_spec_widens_every_kind() -> None:
    assert step_action_spec(ActionSpec.discrete(5), 1) == ActionSpec.discrete(5)
    assert step_action_spec(ActionSpec.discrete(5), 4) == ActionSpec.multi_discrete([5] * 4)
    md = step_action_spec(ActionSpec.multi_discrete([2, 3], names=["a", "b"]), 2)
    assert md.nvec == (2, 3, 2, 3) and md.names == ("a@0", "b@0", "a@1", "b@1")
    box = step_action_spec(ActionSpec.continuous(2, low=[-1, 0], high=[1, 2], bins=8), 3)
    assert box.action_shape == (6,) and box.low == (-1, 0) * 3 and box.high == (1, 2) * 3
    assert box.bins == 8
    with pytest.raises(ValueError, match=">= 1"):
        step_action_spec(ActionSpec.discrete(5), 0)


def test_group_actions_keeps_each_step_s_actions_in_order() -> None:
    acts = torch.arange(8).view(1, 8)
    grouped = group_actions(acts, ActionSpec.discrete(8), 4)
    assert grouped.tolist() == [[[0, 1, 2, 3], [4, 5, 6, 7]]]
    ActionSpec.multi_discrete([8] * 4).validate(grouped)
    box = torch.randn(2, 6, 3).clamp(-1, 1)
    grouped = group_actions(box, ActionSpec.continuous(3), 2)
    assert grouped.shape == (2, 3, 6) and torch.equal(grouped[:, 1, 3:], box[:, 3])
    with pytest.raises(ValueError, match="whole latent steps"):
        group_actions(acts[:, :7], ActionSpec.discrete(8), 4)


def test_num_latent_steps_and_trim_context() -> None:
    assert num_latent_steps(1, 4) == 0 and num_latent_steps(9, 4) == 2
    with pytest.raises(ValueError, match="1 \\+ n·4"):
        num_latent_steps(8, 4, "clip")
    frames = torch.arange(7.0).view(1, 7, 1, 1, 1)
    actions = torch.arange(6).view(1, 6)
    kept, acts = trim_context(frames, actions, 4)  # 7 = 1 + 1·4 + 2: the 2 oldest go
    assert kept.flatten().tolist() == [2, 3, 4, 5, 6] and acts.flatten().tolist() == [2, 3, 4, 5]
    kept, acts = trim_context(frames, torch.arange(7).view(1, 7), 4)  # a T0-th action: unused
    assert acts.flatten().tolist() == [2, 3, 4, 5]
    kept, acts = trim_context(frames[:, :3], None, 4)
    assert kept.flatten().tolist() == [2] and acts is None


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_toy_video_tokenizer_is_a_causal_4x_tokenizer(kind: str) -> None:
    tok = ToyVideoTokenizer(frames_per_latent=4, patch=4, kind=kind)
    video = _video(2, 9)
    latents = tok.encode(video)
    assert tuple(latents.values.shape[1:2]) == (3,)
    per_frame = ToyTokenizer(patch=4, levels=2, kind=kind)  # the same pooling, frame by frame
    video = per_frame.decode(per_frame.encode(video))
    torch.testing.assert_close(tok.decode(latents), video, rtol=0, atol=1e-6)
    check_tokenizer(tok, video)
    head, stream = tok.decode_next(latents.values[:, :2])
    tail, _ = tok.decode_next(latents.values[:, 2:], stream)
    assert head.shape[1] == 5 and tail.shape[1] == 4
    torch.testing.assert_close(torch.cat([head, tail], 1), video, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spec", [ActionSpec.discrete(5), ActionSpec.continuous(2)])
def test_latent_step_world_model_passes_conformance(spec: ActionSpec) -> None:
    torch.manual_seed(0)
    model = ToyLatentStepWorldModel(spec, frames_per_step=4).eval()
    for p in model.parameters():  # an untrained toy copies the last frame: give it motion
        torch.nn.init.normal_(p, std=0.3)
    context = _video(2, 6)
    actions = spec.sample((2, 10), generator=torch.Generator().manual_seed(1))
    check_world_model(model, context, actions)


def test_buffered_step_serves_one_frame_per_call_k_minus_1_behind() -> None:
    torch.manual_seed(0)
    spec = ActionSpec.discrete(5)
    model = ToyLatentStepWorldModel(spec, frames_per_step=3).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    context = _video(1, 4)
    actions = spec.sample((1, 6), generator=torch.Generator().manual_seed(2))
    rolled = model.rollout(context, actions).frames
    state = model.reset(context)
    outs = []
    for t in range(6):
        out = model.step(state, actions[:, t])
        outs.append(out)
        state = out.state
    assert [o.lag for o in outs] == [1, 2, 2, 2, 2, 2]
    assert [o.new_frames is not None for o in outs] == [False, False, True, False, False, True]
    torch.testing.assert_close(outs[0].frame, context[:, -1], rtol=0, atol=0)
    torch.testing.assert_close(outs[2].frame, rolled[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(outs[5].frame, rolled[:, 3], rtol=0, atol=0)
    assert outs[2].reward is not None and outs[0].reward is None
    assert state.t == 4 + 4  # 4 observed, 4 served


def test_conformance_catches_a_model_that_serves_the_wrong_frames() -> None:
    class Eager(ToyLatentStepWorldModel):  # serves the newest generated frame: not k - 1 behind
        def step(self, state, action):  # type: ignore[no-untyped-def]
            out = super().step(state, action)
            if out.new_frames is not None:
                out.frame = out.new_frames[:, -1]
            return out

    spec = ActionSpec.discrete(5)
    torch.manual_seed(0)
    model = Eager(spec, frames_per_step=2).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    context = _video(1, 3)
    actions = spec.sample((1, 4), generator=torch.Generator().manual_seed(3))
    with pytest.raises(AssertionError, match="served"):
        check_world_model(model, context, actions, save_load=False)
