"""The static-cache path behind ``cuda_graphs=True`` gives the same rollouts as the dynamic
cache (on CPU the static path runs eagerly; the graph capture itself is exercised by
``tools/bench_ar_world.py --part gpu`` on a GPU, which checks the same equality there)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import squares, tiny_model

from wmkit.ar_world.cuda_graphs import GraphedDecoder
from wmkit.ar_world.kv_cache import KVCache


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decoding": "raster"},
        {"decoding": "diagonal", "window": 3},
        {"decoding": "diagonal", "window": 3, "cross_frame": True},
    ],
)
def test_static_cache_rollout_equals_dynamic_past_the_window(kwargs):
    eps, frames, actions = squares(length=10)
    common = {"max_frames": 3, "refresh_keep": 1, "temperature": 0.0, **kwargs}
    dynamic = tiny_model(eps.action_spec, **common)
    static = tiny_model(eps.action_spec, cuda_graphs=True, **common)
    ref = dynamic.rollout(frames[:, :2], actions[:, 1:8])  # 7 steps through a 3-frame window
    out = static.rollout(frames[:, :2], actions[:, 1:8])
    assert static.decoder.graphed is not None and static.decoder.graphed.cache.static
    assert not static.decoder.graphed.use_graphs  # CPU: eager static path
    torch.testing.assert_close(out.frames, ref.frames)
    torch.testing.assert_close(out.rewards, ref.rewards, atol=1e-5, rtol=0)


def test_static_cache_keeps_shapes_and_masks_unwritten_slots():
    cache = KVCache.empty(1, 1, 1, 2, 6, static=True)
    assert cache.end == 6
    cache.mark(torch.tensor([0, 2]))
    mask = cache.attention_mask(torch.tensor([0, 2]))
    assert mask.shape == (2, 6)  # all slots, always
    assert mask.tolist() == [[True, False, False, False, False, False],
                             [True, False, True, False, False, False]]  # fmt: skip
    cache.reset()
    assert cache.end == 6 and not cache.valid.any()


def test_reset_reuses_the_graphed_cache_and_clones_get_their_own():
    eps, frames, actions = squares(length=6)
    model = tiny_model(eps.action_spec, cuda_graphs=True, temperature=0.0)
    state = model.reset(frames[:, :2])
    cache = state.cache
    again = model.reset(frames[:, :2])
    assert again.cache is cache  # one live state: the graphs are bound to this cache
    branch = again.clone()
    assert branch.cache is not cache and branch.cache.static
    a = model.step(branch, actions[:, 1]).frame
    b = model.step(again, actions[:, 1]).frame
    torch.testing.assert_close(a, b)
    model.to(torch.float64)  # moving the model drops graphs bound to the old parameters
    assert model.decoder.graphed is None


def test_graphed_decoder_needs_a_static_cache_and_cuda_graphs_a_kv_cache():
    eps, _, _ = squares()
    model = tiny_model(eps.action_spec)
    with pytest.raises(ValueError, match="static KV cache"):
        GraphedDecoder(model.transformer, KVCache.empty(2, 1, 2, 16, 8))
    with pytest.raises(ValueError, match="needs use_cache=True"):
        tiny_model(eps.action_spec, cuda_graphs=True, use_cache=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("cross_frame", "compiled"), [(False, False), (True, False), (True, True)])
def test_cuda_graph_replay_equals_eager_on_gpu(cross_frame, compiled):
    eps, frames, actions = squares(length=10)
    model = tiny_model(
        eps.action_spec, max_frames=4, temperature=0.0, decoding="diagonal", window=3,
        cross_frame=cross_frame, cuda_graphs=True, compile_decoding=compiled,
    ).cuda()  # fmt: skip
    frames, actions = frames.cuda(), actions.cuda()
    graphed = model.rollout(frames[:, :2], actions[:, 1:8])
    graphs = model.decoder.graphed
    assert graphs.use_graphs and graphs.captured  # graphs were replayed
    model.decoder.graphed.use_graphs = False
    eager = model.rollout(frames[:, :2], actions[:, 1:8])
    assert torch.equal(graphed.frames, eager.frames)
    torch.testing.assert_close(graphed.rewards, eager.rewards, rtol=0, atol=0)


def test_compiled_decoding_equals_eager_decoding():
    """``compile_decoding=True`` (whole cached passes through ``torch.compile`` with
    ``fullgraph``, on a static cache; ~30 s of inductor compilation on CPU, shared by both
    models) gives the same greedy rollouts as eager decoding on the dynamic cache, step by
    step (past the window: the prefill's length changes) and across frames under
    ``cuda_graphs`` (eager replay off CUDA)."""
    eps, frames, actions = squares(length=8)
    common = {"max_frames": 4, "temperature": 0.0, "decoding": "diagonal", "window": 3}
    for extra in ({}, {"cross_frame": True, "cuda_graphs": True}):
        ref = tiny_model(eps.action_spec, **common, **extra)
        compiled = tiny_model(eps.action_spec, compile_decoding=True, **common, **extra)
        assert compiled.transformer.compiled_decoding and not ref.transformer.compiled_decoding
        calls = []
        inner = compiled.transformer._compiled
        compiled.transformer._compiled = lambda *a, inner=inner, calls=calls: (
            calls.append(1) or inner(*a)
        )
        a = ref.rollout(frames[:, :2], actions[:, 1:6])
        b = compiled.rollout(frames[:, :2], actions[:, 1:6])
        assert len(calls) > 10  # every cached pass went through the compiled graph
        assert torch.equal(a.frames, b.frames)
        torch.testing.assert_close(a.rewards, b.rewards, atol=1e-5, rtol=0)
