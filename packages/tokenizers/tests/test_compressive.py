"""The iVideoGPT-style compressive tokenizer: token layout, context dependence, the
cross-attention ablation, code usage, save/load, conformance, configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from wmkit.core import load_pretrained
from wmkit.core.protocols import Latents
from wmkit.core.testing import check_config_runs, check_save_load, check_tokenizer, moving_squares
from wmkit.tokenizers import CompressiveModule, CompressiveTokenizer, FrameTokens

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_lit_helpers import fit_and_test, recorded_data_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "compressive"
#: Parameter count of compressive_crafter.yaml's tokenizer, as stated in the README.
CRAFTER_PARAMS = 4_160_598


def _video(b: int = 2, t: int = 5, size: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, size, size, generator=gen) * 2 - 1


def _tok(**kw) -> CompressiveTokenizer:
    torch.manual_seed(0)
    args = {"size": "tiny", "spatial_compression": 4, "future_patch": 2, **kw}
    return CompressiveTokenizer(**args).eval()


@pytest.mark.parametrize(("s", "p", "size"), [(4, 2, 16), (4, 4, 32), (2, 2, 16), (8, 1, 16)])
def test_tokens_per_frame_as_configured(s, p, size):
    tok = _tok(spatial_compression=s, future_patch=p)
    per = tok.tokens_per_frame(size, size)
    assert per == FrameTokens(context=(size // s) ** 2, future=(size // (s * p)) ** 2)
    lat = tok.encode(_video(1, 4, size), context_frames=3)
    assert lat.values.shape == (1, 3, size // s, size // s)
    assert lat.future.shape == (1, 1, size // (s * p), size // (s * p))
    assert lat.values[0, 0].numel() == per.context and lat.future[0, 0].numel() == per.future
    assert tuple(lat.future.shape[1:]) == tok.future_tokens_shape(4, size, size, 3)
    assert lat.context_indices == (0, 1, 2)
    assert lat.values.max() < tok.vocab_size and lat.future.max() < tok.future_vocab_size


def test_context_indices_need_not_be_a_prefix():
    """Goal conditioning (iVideoGPT): the last frame is context; frames come back in order,
    and context frames are tokenized independently of everything else."""
    tok, video = _tok(), _video()
    lat = tok.encode(video, context_indices=(4, 0))
    assert lat.context_indices == (4, 0) and lat.future.shape[1] == 3
    alone = tok.encode(video[:, [4, 0]])
    assert torch.equal(lat.values, alone.values)
    recon = tok.decode(lat)
    assert recon.shape == video.shape
    assert torch.allclose(recon[:, [4, 0]], tok.decode(alone.values), atol=1e-5)


def test_future_tokens_depend_on_their_frame_and_the_context_only():
    tok, video = _tok(), _video()
    lat = tok.encode(video, context_frames=2)
    edited = video.clone()
    edited[:, 3] = -edited[:, 3]
    lat2 = tok.encode(edited, context_frames=2)
    assert torch.equal(lat.values, lat2.values)
    assert torch.equal(lat.future[:, [0, 2]], lat2.future[:, [0, 2]])  # frames 2 and 4
    assert not torch.equal(lat.future[:, 1], lat2.future[:, 1])


def test_changing_the_context_changes_the_decoded_future():
    video, other = _video(seed=0), _video(seed=1)
    for cross in (True, False):
        tok = _tok(cross_attention=cross)
        lat = tok.encode(video, context_frames=2)
        swapped = Latents(
            values=tok.encode(other[:, :2]).values,
            kind="discrete",
            future=lat.future,
            context_indices=lat.context_indices,
        )
        diff = (tok.decode(lat)[:, 2:] - tok.decode(swapped)[:, 2:]).abs().max()
        if cross:
            assert diff > 1e-3
        else:  # without the cross-attention path the future ignores the context
            assert diff == 0


def _train(tok: CompressiveTokenizer, frames: torch.Tensor, steps: int, **kw) -> float:
    """Train on one fixed batch (random context length per step); future-frame L1 after."""
    args = {"lr": 3e-3, "perceptual_weight": 0.0, "max_context_frames": 2, **kw}
    module = CompressiveModule(tok, **args)
    opt = module.configure_optimizers()
    tok.train()
    for _ in range(steps):
        loss, _ = module._losses(frames, module.sample_context(frames.shape[1]))
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
    tok.eval()
    with torch.no_grad():
        recon = tok.decode(tok.encode(frames, context_frames=2))
    return float((recon[:, 2:] - frames[:, 2:]).abs().mean())


@pytest.fixture(scope="module")
def squares() -> torch.Tensor:
    frames = torch.from_numpy(moving_squares(8, 5, 16, seed=0).frames)  # uint8 [8, 5, 16, 16, 3]
    return frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # [8, 5, 3, 16, 16] in [-1, 1]


@pytest.fixture(scope="module")
def trained(squares) -> dict[str, tuple[CompressiveTokenizer, float]]:
    out = {}
    for cross in (True, False):
        torch.manual_seed(0)
        tok = CompressiveTokenizer(
            "tiny",
            spatial_compression=4,
            future_patch=4,
            cross_attention=cross,
            future_levels=[5, 5, 5],
            cross_attention_levels=3,  # every resolution: fine detail comes from the context
        )
        out[str(cross)] = (tok, _train(tok, squares, 100))
    return out


def test_removing_cross_attention_degrades_future_reconstruction(trained, squares):
    """iVideoGPT's decoupling: with one future token per frame (125 codes), a future frame
    can only be rebuilt from the context; without cross-attention it cannot."""
    with_ctx, without = trained["True"][1], trained["False"][1]
    initial = float((squares[:, 2:] - squares[:, 2:].mean()).abs().mean())
    assert with_ctx < 0.95 * without  # a clear margin, not float noise
    assert with_ctx < initial


def test_code_usage_above_floor_on_a_real_batch(trained, squares):
    tok = trained["True"][0]
    lat = tok.encode(squares, context_frames=2)
    assert lat.values.unique().numel() >= 8  # of 16·16 context tokens
    assert lat.future.unique().numel() >= 4  # of 24 future tokens


def test_vq_quantizer_trains_and_uses_many_codes(squares):
    torch.manual_seed(0)
    tok = CompressiveTokenizer(
        "tiny",
        spatial_compression=4,
        future_patch=2,
        quantizer="vq",
        codebook_size=64,
        future_codebook_size=64,
        vq_dim=8,
        vq_codebook_dim=4,
    )
    _train(tok, squares, 10)
    lat = tok.encode(squares, context_frames=2)
    assert lat.values.max() < 64 and lat.values.unique().numel() >= 8


def test_save_load_round_trip(tmp_path):
    tok, video = _tok(quantizer="vq", codebook_size=32, future_codebook_size=32, vq_dim=8), _video()
    again = check_save_load(tok, forward=lambda m: m.decode(m.encode(video, context_frames=2)))
    assert again.future_spatial_compression == 8
    tok.save_pretrained(tmp_path / "tok")
    loaded = load_pretrained(tmp_path / "tok")
    assert torch.equal(
        loaded.encode(video, context_frames=1).future, tok.encode(video, context_frames=1).future
    )


@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_conformance(quantizer):
    """``encode(video)`` with the default ``context_frames=None`` tokenizes every frame as
    context (N tokens each, each frame independently), so the contract's causality check
    (latent j depends on frames <= j) holds with ``causal=True``. A tokenizer configured with
    ``context_frames=T0`` cannot pass the contract's ``decode(latents.values)`` == full video
    check (a bare tensor carries no future tokens), see the next test."""
    tok = _tok(quantizer=quantizer, codebook_size=64, future_codebook_size=64, vq_dim=8)
    check_tokenizer(tok, _video(), causal=True)


def test_default_context_frames_from_config():
    tok, video = _tok(context_frames=2), _video()
    lat = tok.encode(video)
    assert lat.values.shape[1] == 2 == tok.tokens_shape(5, 16, 16)[0]
    assert lat.future.shape[1] == 3
    assert tok.decode(lat).shape == video.shape
    assert tok.decode(lat.values).shape[1] == 2  # context only


def test_bad_inputs_raise_clear_errors():
    tok, video = _tok(), _video()
    with pytest.raises(ValueError, match="not both"):
        tok.encode(video, context_frames=1, context_indices=(0,))
    with pytest.raises(ValueError, match="context_indices"):
        tok.encode(video, context_indices=(0, 0))
    with pytest.raises(ValueError, match="context_indices"):
        tok.encode(video, context_indices=(5,))
    with pytest.raises(ValueError, match="context_frames"):
        tok.encode(video, context_frames=6)
    with pytest.raises(ValueError, match="multiples of"):
        tok.encode(_video(size=12))
    with pytest.raises(ValueError, match="video"):
        tok.encode(video[0])
    with pytest.raises(ValueError, match="long"):
        tok.decode(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode(torch.full((1, 2, 4, 4), 10**6))
    with pytest.raises(ValueError, match="size"):
        CompressiveTokenizer("huge")
    with pytest.raises(ValueError, match="future_patch"):
        CompressiveTokenizer(future_patch=3)
    with pytest.raises(ValueError, match="min_context_frames"):
        CompressiveModule(tok, min_context_frames=0)


def test_context_length_is_random_per_batch():
    module = CompressiveModule(_tok(), min_context_frames=1, max_context_frames=3, goal_prob=0.5)
    draws = [module.sample_context(6) for _ in range(200)]
    assert {len(d) for d in draws} == {1, 2, 3}
    assert any(d[0] == 5 for d in draws) and any(d[0] == 0 for d in draws)


def test_tiny_config_fits_and_tests(tmp_path):
    check_config_runs(CONFIGS / "compressive_tiny.yaml", tmp_path, "--trainer.accelerator=cpu")
    assert list((tmp_path / "reconstructions").glob("epoch*.gif"))  # real | reconstruction


def test_crafter_config_builds_on_meta_with_stated_size():
    cfg = yaml.safe_load((CONFIGS / "compressive_crafter.yaml").read_text())
    args = cfg["model"]["init_args"]["tokenizer"]["init_args"]
    with torch.device("meta"):
        tok = CompressiveTokenizer(**args)
    assert tok.num_parameters() == CRAFTER_PARAMS
    assert tok.tokens_per_frame(64, 64) == FrameTokens(context=256, future=16)


def test_crafter_config_fits_and_tests_at_tiny_size(tmp_path):
    root = tmp_path / "squares"
    eps = moving_squares(4, 12, 16, seed=0)
    eps.save(root)
    overrides = [
        "--model.init_args.tokenizer.init_args.size=tiny",
        "--model.init_args.tokenizer.init_args.vq_dim=8",
        "--model.init_args.tokenizer.init_args.codebook_size=64",
        "--model.init_args.tokenizer.init_args.future_codebook_size=64",
        "--model.init_args.perceptual_weight=0",
        *recorded_data_overrides(root, tmp_path, 2, clip_length=4),
        "--trainer.precision=32-true",
    ]
    fit_and_test(CONFIGS / "compressive_crafter.yaml", overrides)
    assert CompressiveTokenizer.from_pretrained(tmp_path / "export").tokens_per_frame(
        16, 16
    ) == FrameTokens(context=16, future=1)


def test_untrained_residual_tokenizer_copies_the_latest_context_frame():
    tok, video = _tok(future_residual=True), _video(t=5)
    lat = tok.encode(video, context_frames=2)
    assert torch.equal(lat.context_frames, video[:, :2])
    out = tok.decode(lat)
    for t in range(2, 5):  # every future frame is the real frame 1, exactly
        torch.testing.assert_close(out[:, t], video[:, 1], rtol=0, atol=0)
    # without the real pixels the anchor is the context tokens' reconstruction
    bare = tok.decode(Latents(lat.values, "discrete", lat.future, lat.context_indices))
    torch.testing.assert_close(bare[:, 3], out[:, 1])
    # goal-first context (4, 0, 1): the anchor is the latest context frame before the future
    goal = tok.encode(video, context_indices=(4, 0, 1))
    torch.testing.assert_close(tok.decode(goal)[:, 2], video[:, 1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="context_frames must be"):
        tok.decode(Latents(lat.values, "discrete", lat.future, (0, 1), video[:, :1]))


def test_residual_tokenizer_learns_changes_and_round_trips(squares, tmp_path):
    tok = _tok(future_residual=True)
    with torch.no_grad():
        copy_last = (squares[:, 2:] - squares[:, 1:2]).abs().mean().item()
    # MSE, not L1: L1 keeps the change output at zero (module docstring)
    trained = _train(tok, squares, 60, l1_weight=0.0, mse_weight=1.0, min_context_frames=2)
    assert trained < 0.7 * copy_last  # well below its copy-last initialisation
    again = check_save_load(tok, forward=lambda m: m.decode(m.encode(squares, context_frames=2)))
    assert again.future_residual


def test_change_input_gives_an_unchanged_frame_the_same_codes_in_any_scene():
    """``future_input="change"``: the future encoder sees the frame minus the residual anchor,
    so a frame equal to the latest context frame encodes the same in every scene (without the
    encoder's cross-attention, nothing else reaches it); seen as frames, it does not."""
    static = []
    for seed in (0, 1):
        video = _video(t=3, seed=seed)
        video[:, 2] = video[:, 1]  # nothing changed after the context
        static.append(video)
    codes = {}
    for mode in ("frame", "change"):
        tok = _tok(future_residual=True, future_input=mode, cross_attention=False)
        codes[mode] = [tok.encode(v, context_frames=2).future for v in static]
    assert torch.equal(codes["change"][0], codes["change"][1])
    assert not torch.equal(codes["frame"][0], codes["frame"][1])
    moved = static[0].clone()
    moved[:, 2] = moved[:, 2].roll(3, dims=-1)  # a change is encoded
    tok = _tok(future_residual=True, future_input="change", cross_attention=False)
    assert not torch.equal(tok.encode(moved, context_frames=2).future, codes["change"][0])


def test_change_input_round_trips_and_needs_the_residual_anchor(squares):
    tok = _tok(future_residual=True, future_input="change")
    again = check_save_load(tok, forward=lambda m: m.decode(m.encode(squares, context_frames=2)))
    assert again.future_input == "change"
    with pytest.raises(ValueError, match="needs future_residual"):
        _tok(future_input="change")
    with pytest.raises(ValueError, match="future_input"):
        _tok(future_residual=True, future_input="delta")
