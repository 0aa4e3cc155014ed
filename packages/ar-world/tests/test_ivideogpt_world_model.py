"""`IVideoGPTWorldModel`: the WorldModel contract on tiny models (action-conditioned and
action-free), goal conditioning, and, with the released parity transformers, ``reset`` +
``step`` producing exactly the future ids of the original code's greedy generations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import (
    ACT_COND,
    CASES,
    PARITY,
    RecordedTokenizer,
    case_json,
    io,
    layout,
    needs_fixtures,
    transformer,
    video,
)  # fmt: skip

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_world_model import IVideoGPTWorldModel
from wmkit.ar_world.llama import LlamaConfig
from wmkit.ar_world.sampling import Sampler
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.testing import ToyCompressiveTokenizer, WorldModelTests, moving_squares

TINY_LAYOUT = IVideoGPTLayout(2, (4, 4), (2, 2), context_vocab_size=8, future_vocab_size=8)
TINY_LLAMA = LlamaConfig(
    vocab_size=TINY_LAYOUT.vocab_size, hidden_size=32, intermediate_size=48,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=64,
)  # fmt: skip


def tiny(action_spec: ActionSpec | None = None, **kwargs) -> IVideoGPTWorldModel:
    torch.manual_seed(0)
    kwargs.setdefault("max_frames", 4)  # 2 future frames per sequence: rollouts re-anchor
    model = IVideoGPTWorldModel(
        ToyCompressiveTokenizer(patch=4, future_patch=2, levels=2), TINY_LLAMA, TINY_LAYOUT,
        action_spec=action_spec, frame_size=(16, 16), **kwargs,
    )  # fmt: skip
    for p in model.parameters():  # random weights of some size, so that inputs matter
        nn.init.normal_(p, std=0.5)
    return model.eval()


def clip(length: int = 6, continuous: bool = True) -> tuple[Tensor, Tensor]:
    eps = moving_squares(2, length, 16, continuous=continuous, seed=0)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions).float()


SPEC = ActionSpec.continuous(2, -1.0, 1.0)


class TestActionConditioned(WorldModelTests):
    def make_model(self):
        return tiny(SPEC)

    def make_inputs(self):
        frames, actions = clip()
        return frames[:, :2], actions[:, 2:7].clamp(-1, 1)


class TestActionFree(WorldModelTests):
    def make_model(self):
        return tiny(None, temperature=0.0)

    def make_inputs(self):
        frames, _ = clip()
        return frames[:, :3], torch.zeros(2, 5, dtype=torch.long)


@torch.no_grad()
def test_actions_steer_an_action_conditioned_model():
    model = tiny(SPEC, temperature=0.0)
    frames, _ = clip()
    a = model.rollout(frames[:, :2], torch.full((2, 2, 2), -1.0)).frames
    b = model.rollout(frames[:, :2], torch.full((2, 2, 2), 1.0)).frames
    assert not torch.equal(a, b)
    assert model.action_spec == SPEC


@torch.no_grad()
def test_goal_frame_conditions_and_stays_pinned():
    model = tiny(None, goal_conditioned=True, temperature=0.0, max_frames=3)
    assert model.observed_context_frames == 1 and model.action_spec.n == 1
    frames, _ = clip()
    acts = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="needs goal_frame"):
        model.reset(frames[:, :1])
    a = model.rollout(frames[:, :1], acts, goal_frame=frames[:, 5]).frames
    b = model.rollout(frames[:, :1], acts, goal_frame=-frames[:, 5]).frames
    assert not torch.equal(a, b)
    state = model.reset(frames[:, :1], goal_frame=frames[:, 5])
    goal_ids = model.encode_context(torch.stack([frames[:, 5], frames[:, 0]], 1))[:, 0]
    for _ in range(3):  # one future frame per sequence: every later step re-anchors
        state = model.step(state, acts[:, 0]).state
        assert torch.equal(state.context_ids[:, 0], goal_ids)
    with pytest.raises(ValueError, match="only for goal-conditioned"):
        tiny(None).reset(frames[:, :2], goal_frame=frames[:, 0])


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="n_vq \\+ n_dyn \\+ 2"):
        IVideoGPTWorldModel(
            ToyCompressiveTokenizer(4, 2, 2), LlamaConfig(vocab_size=10, hidden_size=32,
            num_attention_heads=4, num_key_value_heads=4), TINY_LAYOUT, frame_size=(16, 16),
        )  # fmt: skip
    with pytest.raises(ValueError, match="continuous with shape"):
        tiny(ActionSpec.discrete(3))
    with pytest.raises(ValueError, match="max_frames must leave"):
        tiny(None, max_frames=2)
    with pytest.raises(ValueError, match="future grid"):
        IVideoGPTWorldModel(
            ToyCompressiveTokenizer(4, 1, 2),
            TINY_LLAMA,
            TINY_LAYOUT,
            frame_size=(16, 16),
            max_frames=4,
        )


def recorded_model(case: str) -> tuple[IVideoGPTWorldModel, RecordedTokenizer, dict, Tensor]:
    ref, lay, c = io(case), layout(case), case_json(case)
    frames = video(case)
    ctx = c["context_length"]
    tok = RecordedTokenizer(frames[:, :ctx], ref["context_token_ids"], lay.context_vocab_size,
                            lay.future_vocab_size)  # fmt: skip
    released = transformer(case)
    spec = None if c["action_dim"] is None else ActionSpec.continuous(c["action_dim"])
    model = IVideoGPTWorldModel(
        tok, released.config, lay, action_spec=spec, goal_conditioned=c["goal_conditioned"],
        max_frames=ctx + c["generated_frames"], temperature=0.0,
    )  # fmt: skip
    model.transformer.load_state_dict(released.state_dict(), strict=True)
    return model.eval(), tok, ref, frames


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_steps_reproduce_the_recorded_generation(case):
    model, tok, ref, frames = recorded_model(case)
    ctx, steps = model.layout.context_frames, case_json(case)["generated_frames"]
    if case in ACT_COND:
        actions = ref["actions"][:, ctx - 1 : ctx - 1 + steps]  # action t follows frame t
    else:
        actions = torch.zeros(1, steps, dtype=torch.long)
    goal = frames[:, 0] if model.goal_conditioned else None
    observed = frames[:, 1:ctx] if model.goal_conditioned else frames[:, :ctx]
    rollout = model.rollout(observed, actions, goal_frame=goal)
    assert torch.equal(torch.cat(tok.decoded, 1), ref["gen_future_token_ids"])
    expected = ref["gen_future_token_ids"].float().mean((-1, -2)) / model.layout.future_vocab_size
    torch.testing.assert_close(rollout.frames[:, :, 0, 0, 0], expected * 2 - 1)


@torch.no_grad()
def test_a_cloned_state_branches_without_touching_the_original():
    model = tiny(SPEC)
    frames, actions = clip()
    act = actions[:, 2].clamp(-1, 1)
    torch.manual_seed(3)
    expected = model.step(model.reset(frames[:, :2]), act).frame
    state = model.reset(frames[:, :2])
    branch = state.clone()
    for _ in range(2):
        branch = model.step(branch, -act).state
    torch.manual_seed(3)
    assert torch.equal(model.step(state, act).frame, expected)
    assert (branch.t, state.t) == (4, 3)


class DecodeOnly:
    """A tokenizer without ``decode_context``/``decode_future``: the world model falls back to
    ``decode`` of the context and the frame at every step."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __getattr__(self, name: str):
        if name in ("decode_context", "decode_future"):
            raise AttributeError(name)
        return getattr(self.tokenizer, name)


@needs_fixtures
@pytest.mark.parametrize("case", ["vp2-robosuite-64-act-cond", "oxe-64-act-free"])
@torch.no_grad()
def test_decoding_the_context_once_gives_the_frames_of_decoding_it_every_step(tmp_path, case):
    from wmkit.ar_world.convert_ivideogpt import convert_ivideogpt

    model = convert_ivideogpt(PARITY / case, max_frames=4).world  # 2 frames, then re-anchor
    model.decoder.sampler = Sampler(temperature=0.0)
    plain = IVideoGPTWorldModel(
        DecodeOnly(model.tokenizer), model.transformer.config, model.layout,
        action_spec=model._spec, max_frames=4, temperature=0.0,
    )  # fmt: skip
    plain.transformer.load_state_dict(model.transformer.state_dict())
    assert model.caches_context and not plain.caches_context
    frames = video(case)[:, :2]
    acts = torch.linspace(-0.9, 0.9, 5 * 4).reshape(1, 5, 4)
    if not model.action_conditioned:
        acts = torch.zeros(1, 5, dtype=torch.long)
    calls = []
    decode_context = model.tokenizer.decode_context
    model.tokenizer.decode_context = lambda ids: calls.append(1) or decode_context(ids)
    try:
        cached = model.rollout(frames, acts).frames
    finally:
        del model.tokenizer.decode_context
    assert len(calls) == 3  # once per context: reset, and re-anchoring after steps 2 and 4
    torch.testing.assert_close(cached, plain.rollout(frames, acts).frames, rtol=0, atol=0)


@torch.no_grad()
def test_diagonal_decoding_is_an_option_saved_in_the_config(tmp_path):
    import json

    from wmkit.core import load_pretrained

    model = tiny(SPEC, temperature=0.0, decoding="diagonal", window=2, offset=1)
    frames, actions = clip()
    acts = actions[:, 2:5].clamp(-1, 1)
    out = model.rollout(frames[:, :2], acts).frames  # 3 steps: re-anchors after step 2
    assert out.shape == (2, 3, *frames.shape[2:])
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["decoding"], config["window"], config["offset"]) == ("diagonal", 2, 1)
    loaded = load_pretrained(tmp_path).eval()
    assert (loaded.decoder.decoding, loaded.decoder.window) == ("diagonal", 2)
    torch.testing.assert_close(loaded.rollout(frames[:, :2], acts).frames, out, rtol=0, atol=0)
    raster = tiny(SPEC, temperature=0.0, decoding="diagonal", window=2, offset=2)  # a row = 2
    plain = tiny(SPEC, temperature=0.0)
    assert plain.decoder.decoding == "raster"
    torch.testing.assert_close(
        raster.rollout(frames[:, :2], acts).frames,
        plain.rollout(frames[:, :2], acts).frames,
        rtol=0,
        atol=0,
    )
    with pytest.raises(ValueError, match="decoding must be one of"):
        tiny(SPEC, decoding="zigzag")
