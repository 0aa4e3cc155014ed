"""Action guidance (``guidance_scale``): tokens come from ``log p_null + s (log p_action -
log p_null)`` of two branches that share the history; the cached decoding equals recomputing
the window past refreshes, diagonal decoding with window 1 equals raster, ``s = 0`` ignores
the current action, the setting is saved, and unsupported combinations fail clearly."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import squares, tiny_model

from wmkit.ar_world import ARWorldModel
from wmkit.core.testing import check_rejects


def test_the_first_token_is_drawn_from_the_guided_distribution():
    eps, frames, actions = squares()
    model = tiny_model(eps.action_spec, temperature=0.0, guidance_scale=3.0)
    state = model.reset(frames[:, :2])
    with torch.no_grad():  # the two branches, run apart on copies of the state
        outs = []
        for act in (actions[:, 1], None):
            branch = state.clone()
            x = model.action_encoder.slot_inputs(model.embed_ids, act, 2, frames.device)
            positions = branch.pos + torch.arange(model.layout.k + 1)
            outs.append(model.frame_head(model.run(branch, x, positions)[:, -1]).log_softmax(-1))
    cond, null = outs
    expected = (null + 3.0 * (cond - null)).argmax(-1)  # [B]
    grid = model.encode_frames(model.step(state, actions[:, 1]).frame[:, None])[:, 0]
    assert torch.equal(state.tokens[-1].flatten(1)[:, 0], expected)
    assert torch.equal(grid.flatten(1)[:, 0], expected)  # the toy tokenizer round-trips


def test_guided_cached_decoding_equals_recomputing_the_window_past_refreshes():
    eps, frames, actions = squares(length=12)
    kwargs = {"max_frames": 3, "refresh_keep": 1, "temperature": 0.0, "guidance_scale": 2.0}
    cached = tiny_model(eps.action_spec, **kwargs)
    plain = tiny_model(eps.action_spec, use_cache=False, **kwargs)
    out = cached.rollout(frames[:, :2], actions[:, 1:9])  # 8 steps, window of 3 frames
    ref = plain.rollout(frames[:, :2], actions[:, 1:9])
    torch.testing.assert_close(out.frames, ref.frames)
    torch.testing.assert_close(out.rewards, ref.rewards, atol=1e-5, rtol=0)
    unguided = tiny_model(eps.action_spec, **{**kwargs, "guidance_scale": 1.0})
    assert not torch.equal(unguided.rollout(frames[:, :2], actions[:, 1:9]).frames, out.frames)


def test_guided_diagonal_decoding_with_window_one_equals_raster():
    eps, frames, actions = squares(length=8)
    common = {"temperature": 0.0, "guidance_scale": 2.0}
    raster = tiny_model(eps.action_spec, **common)
    diagonal = tiny_model(eps.action_spec, decoding="diagonal", window=1, **common)
    a = raster.rollout(frames[:, :2], actions[:, 1:5]).frames
    b = diagonal.rollout(frames[:, :2], actions[:, 1:5]).frames
    torch.testing.assert_close(a, b)


def test_scale_zero_ignores_the_current_action():
    """``s = 0`` draws from the null branch: the next frame is the same whatever the action
    (past actions still shape it through the shared history)."""
    eps, frames, actions = squares(length=8)
    model = tiny_model(eps.action_spec, temperature=0.0, guidance_scale=0.0)
    plain = tiny_model(eps.action_spec, temperature=0.0)
    other = (actions[:, 2] + 1) % eps.action_spec.n
    nexts = {}
    for name, m in (("zero", model), ("plain", plain)):
        state = m.reset(frames[:, :2], actions[:, :1])
        nexts[name] = [m.step(state.clone(), a).frame for a in (actions[:, 2], other)]
    torch.testing.assert_close(nexts["zero"][0], nexts["zero"][1])
    assert not torch.equal(nexts["plain"][0], nexts["plain"][1])  # the action matters unguided


def test_guidance_is_saved_and_bad_settings_fail_clearly(tmp_path):
    eps, _, _ = squares()
    model = tiny_model(eps.action_spec, guidance_scale=1.5)
    model.save_pretrained(tmp_path / "m")
    assert ARWorldModel.from_pretrained(tmp_path / "m").decoder.guidance_scale == 1.5
    check_rejects(lambda: tiny_model(eps.action_spec, guidance_scale=-1.0), match=">= 0")
    check_rejects(
        lambda: tiny_model(eps.action_spec, decoding="diagonal", cross_frame=True,
                           guidance_scale=2.0), match="cross_frame",
    )  # fmt: skip
    check_rejects(
        lambda: tiny_model(eps.action_spec, cuda_graphs=True, guidance_scale=2.0),
        match="cuda_graphs",
    )
