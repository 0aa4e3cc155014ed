"""ARWorldModel: the WorldModel contract, KV cache, action causality, long rollouts, save/load."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from helpers import squares, tiny_model

from wmkit.ar_world import ARWorldModel, RasterDecoder
from wmkit.core import ActionSpec, load_pretrained
from wmkit.core.testing import ToyTokenizer, WorldModelTests, check_rejects


class TestTokensRaster(WorldModelTests):
    def make_model(self):
        return tiny_model(ActionSpec.discrete(5))

    def make_inputs(self):
        _, frames, actions = squares()
        return frames[:, :2], actions[:, 1:5]


class TestTokensDiagonalMultiDiscrete(WorldModelTests):
    def make_model(self):
        spec = ActionSpec.multi_discrete([5, 3])
        return tiny_model(spec, decoding="diagonal", window=3, top_k=4, top_p=0.9)

    def make_inputs(self):
        _, frames, actions = squares()
        extra = torch.arange(4).remainder(3).expand(2, 4)
        return frames[:, :2], torch.stack([actions[:, 1:5], extra], dim=-1)


class TestEmbeddingDiagonalContinuous(WorldModelTests):
    def make_model(self):
        spec = ActionSpec.continuous(2, low=-1.0, high=1.0)
        return tiny_model(spec, action_mode="embedding", decoding="diagonal")

    def make_inputs(self):
        _, frames, actions = squares(continuous=True)
        return frames[:, :2], actions[:, 1:5]


def _sequence(model, tokens, actions):
    action_ids = model.action_encoder.ids(actions, None, tokens.shape[0])  # [B, T, K + 1]
    ids, roles = model.layout.build(tokens, action_ids)
    return model.embed_ids(ids, roles)  # [B, S, D]


def test_kv_cached_forward_equals_uncached():
    eps, frames, actions = squares(length=4)
    model = tiny_model(eps.action_spec)
    with torch.no_grad():
        x = _sequence(model, model.encode_frames(frames), actions)
        s = x.shape[1]
        full = model.transformer(x, torch.arange(s))
        cache = model.transformer.new_cache(2, s, x.device, x.dtype)
        chunks, start = [], 0
        for size in (7, 1, 1, 5, 1, s):  # a prefill, single tokens, a block, the rest
            stop = min(start + size, s)
            chunks.append(model.transformer(x[:, start:stop], torch.arange(start, stop), cache))
            start = stop
            if start == s:
                break
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.frame_head(torch.cat(chunks, 1)), model.frame_head(full))


@pytest.mark.parametrize("mode", ["tokens", "embedding"])
def test_action_changes_next_frame_logits_only(mode):
    eps, frames, actions = squares(length=5)
    model = tiny_model(eps.action_spec, action_mode=mode, max_frames=5)
    tokens = model.encode_frames(frames)
    t = 2
    changed = actions.clone()
    changed[:, t] = (changed[:, t] + 1) % 5
    with torch.no_grad():
        a, b = model(tokens, actions), model(tokens, changed)
    # frame_logits[:, i] predicts frame i + 1; action t acts on frame t + 1.
    assert torch.equal(a.frame_logits[:, :t], b.frame_logits[:, :t])
    assert not torch.allclose(a.frame_logits[:, t], b.frame_logits[:, t])
    assert torch.equal(a.reward[:, :t], b.reward[:, :t])
    assert not torch.allclose(a.reward[:, t], b.reward[:, t])


def test_long_rollout_past_window_refreshes_cache_and_equals_uncached():
    eps, frames, actions = squares(length=12)
    kwargs = {"max_frames": 3, "refresh_keep": 1, "temperature": 0.0}
    cached = tiny_model(eps.action_spec, **kwargs)
    plain = tiny_model(eps.action_spec, use_cache=False, **kwargs)
    out = cached.rollout(frames[:, :2], actions[:, 1:11])  # 10 steps, window of 3 frames
    assert out.frames.shape == (2, 10, 3, 16, 16)
    assert out.frames.abs().max() <= 1
    ref = plain.rollout(frames[:, :2], actions[:, 1:11])
    torch.testing.assert_close(out.frames, ref.frames)
    torch.testing.assert_close(out.rewards, ref.rewards, atol=1e-5, rtol=0)


def test_goal_and_prompt_prefixes_are_pinned_across_refreshes():
    eps, frames, actions = squares(length=8)
    model = tiny_model(eps.action_spec, max_frames=5, temperature=0.0)
    state = model.reset(
        frames[:, :1], goal_frame=frames[:, -1], prompt_frames=frames[:, 2:4],
        prompt_actions=actions[:, 2:3],
    )  # fmt: skip
    assert len(state.prefix_tokens) == 3
    for t in range(4):
        state = model.step(state, actions[:, t]).state
    assert len(state.prefix_tokens) == 3
    assert len(state.prefix_tokens) + len(state.tokens) <= model.max_frames
    check_rejects(
        lambda: model.reset(frames[:, :1], prompt_frames=frames[:, :5]), match="max_frames"
    )


def test_bad_inputs_raise_clear_errors():
    eps, frames, actions = squares()
    model = tiny_model(eps.action_spec)
    check_rejects(lambda: model.reset(frames[:, :2, :, :8, :8]), match="frame_size")
    state = model.reset(frames[:, :2])
    check_rejects(lambda: model.step(state, actions[:1, 0]), match="batch")
    check_rejects(lambda: model.step(state, actions[:, :2]), match="action")
    tokens = model.encode_frames(frames)
    check_rejects(lambda: model(tokens, actions), match="max_frames")
    check_rejects(lambda: model(tokens[:, :3, :2], actions[:, :3]), match="tokens")
    check_rejects(lambda: tiny_model(eps.action_spec, size="huge"), match="size")
    check_rejects(lambda: tiny_model(eps.action_spec, decoding="diagonal", use_cache=False))
    cont = ToyTokenizer(kind="continuous")
    check_rejects(lambda: ARWorldModel(eps.action_spec, cont), match="discrete")
    check_rejects(lambda: ARWorldModel(eps.action_spec, object()), match="Tokenizer")


def test_save_load_with_tokenizer_by_path(tmp_path):
    eps, frames, actions = squares()
    ToyTokenizer(patch=4, levels=2).save_pretrained(tmp_path / "tok")
    torch.manual_seed(0)
    model = ARWorldModel(
        eps.action_spec, str(tmp_path / "tok"), decoder=RasterDecoder(temperature=0.0), max_frames=4
    )
    model.save_pretrained(tmp_path / "wm")
    assert (tmp_path / "wm" / "tokenizer" / "config.json").is_file()
    loaded = load_pretrained(tmp_path / "wm")
    assert isinstance(loaded, ARWorldModel)
    a = model.eval().rollout(frames[:, :2], actions[:, 1:3]).frames
    b = loaded.rollout(frames[:, :2], actions[:, 1:3]).frames
    assert torch.equal(a, b)
    # the tokenizer is saved beside the weights, never inside them
    assert not any(k.startswith("tokenizer") for k in model.state_dict())


def test_weights_saved_with_separate_gate_and_up_still_load(tmp_path):
    """SwiGLU's gate and up matrices became one ``gate_up``; files and checkpoints written
    with the two apart load into it (``from_pretrained`` and ``load_state_dict`` alike)."""
    eps, frames, actions = squares()
    model = tiny_model(eps.action_spec, temperature=0.0)
    model.save_pretrained(tmp_path / "wm")
    weights = tmp_path / "wm" / "model.safetensors"
    old = {}
    for key, value in load_file(str(weights)).items():
        if key.endswith(".ffn.gate_up.weight"):
            gate, up = value.chunk(2, dim=0)
            old[key.replace("gate_up", "gate")], old[key.replace("gate_up", "up")] = gate, up
        else:
            old[key] = value
    assert any(k.endswith("ffn.gate.weight") for k in old)
    save_file({k: v.contiguous() for k, v in old.items()}, str(weights))
    loaded = ARWorldModel.from_pretrained(tmp_path / "wm")
    expected = model.rollout(frames[:, :2], actions[:, 1:3]).frames
    assert torch.equal(loaded.rollout(frames[:, :2], actions[:, 1:3]).frames, expected)
    torch.manual_seed(1)
    fresh = ARWorldModel(
        eps.action_spec, model.tokenizer, decoder=RasterDecoder(temperature=0.0), max_frames=4
    ).eval()
    before = fresh.transformer.blocks[0].ffn.gate_up.weight.clone()
    fresh.load_state_dict(old)
    after = fresh.transformer.blocks[0].ffn.gate_up.weight
    assert not torch.equal(before, after)
    assert torch.equal(after, model.transformer.blocks[0].ffn.gate_up.weight)
    assert torch.equal(fresh.rollout(frames[:, :2], actions[:, 1:3]).frames, expected)
