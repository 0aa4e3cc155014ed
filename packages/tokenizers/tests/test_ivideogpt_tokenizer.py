"""iVideoGPT's plain-VQ compressive tokenizer: parity with the original code on the four
fixture cases of ``../shared/parity/ivideogpt`` (made by running thuml/iVideoGPT at reduced
width with random weights; its README gives the tolerances used here), key coverage of the
released full-size configs, the ``Tokenizer`` contract, and the loader's refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wmkit.core import load_pretrained
from wmkit.core.testing import TokenizerTests, check_save_load
from wmkit.tokenizers import IVIDEOGPT_TOKENIZER_SIZES, IVideoGPTTokenizer, NearestVQ
from wmkit.tokenizers.convert_ivideogpt import (
    load_released_tokenizer,
    read_released_tokenizer,
    released_tokenizer_config,
)

REPO = Path(__file__).resolve().parents[3]
PARITY = Path(os.environ.get("WMKIT_PARITY_DIR", REPO.parent / "shared" / "parity")) / "ivideogpt"
CASES = ["bair-64-act-cond", "vp2-robosuite-64-act-cond", "oxe-64-act-free", "oxe-64-goal-cond"]
ATOL = 1e-5
FULL_SIZES = {
    "tokenizer-64-ctx1": "64-ctx1",
    "tokenizer-64-ctx2": "64-ctx2",
    "tokenizer-256-ctx2": "256-ctx2",
}

needs_fixtures = pytest.mark.skipif(
    not PARITY.is_dir(),
    reason=f"iVideoGPT parity fixtures not found at {PARITY} (a clone without ../shared; "
    "set WMKIT_PARITY_DIR to the directory holding ivideogpt/)",
)


@pytest.fixture(scope="module")
def released() -> dict:
    """Each case's tokenizer loaded once from its released-layout folder, with its io."""
    if not PARITY.is_dir():
        pytest.skip(f"iVideoGPT parity fixtures not found at {PARITY}")
    out = {}
    for case in CASES:
        tok = load_released_tokenizer(PARITY / case / "tokenizer")
        out[case] = (tok, load_file(PARITY / case / "io.safetensors"))
    return out


def _pixels(frames_uint8: torch.Tensor) -> torch.Tensor:
    """The original's model input: ``[B, T, H, W, C]`` uint8 → float ``[B, T, C, H, W]`` / 255."""
    return frames_uint8.permute(0, 1, 4, 2, 3).float() / 255


def _close(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = ATOL) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    diff = (got.double() - want.double()).abs().max().item()
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} > {atol:g}"


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_tokenize_parity(case, released):
    """Context and dynamics ids identical to the original's argmin; the VQ inputs within
    1e-5. The goal-conditioned case feeds frames_uint8 as given (already in model order)."""
    tok, io = released[case]
    ctx = tok.context_length
    with torch.no_grad():
        codes = tok.encode_unit(_pixels(io["frames_uint8"]), context_frames=ctx)
    assert torch.equal(codes.context_ids, io["context_token_ids"])
    assert torch.equal(codes.future_ids, io["future_token_ids"])
    _close(codes.prequant_context, io["prequant_context"], "prequant_context")
    _close(codes.prequant_future, io["prequant_future"], "prequant_future")


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_detokenize_parity(case, released):
    """Frames decoded from the fixture's ids match the original's unclamped ``detokenize``
    within 1e-5, for the teacher-forced ids and for the greedy generation (whose future slots
    are mapped to dynamics ids as ``detokenize`` does: minus ``n_vq``, clamped)."""
    tok, io = released[case]
    ctx = tok.context_length
    with torch.no_grad():
        recon = tok.decode_unit(io["context_token_ids"], io["future_token_ids"])
    _close(recon[:, :ctx], io["recon_context"], "recon_context")
    _close(recon[:, ctx:], io["recon_future"], "recon_future")

    n_vq, n_dyn = tok.num_vq_embeddings, tok.num_dyn_embeddings
    gen_ids = io["gen_ids"]
    prompt = io["gen_input_ids"].shape[1]
    slots = torch.cat([gen_ids[:, prompt:], gen_ids.new_zeros(1, 1)], dim=1)  # G·17 slots
    future = (slots.view(1, -1, 17)[:, :, :16] - n_vq).clamp(0, n_dyn - 1).view(1, -1, 4, 4)
    assert torch.equal(future, io["gen_future_token_ids"])
    with torch.no_grad():
        gen = tok.decode_unit(io["context_token_ids"], future)
    _close(gen[:, :ctx], io["recon_context"], "generated clip's context")
    _close(gen[:, ctx:], io["gen_frames"], "gen_frames")


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_wmkit_interface_on_fixture(case, released):
    """``encode``/``decode`` on wmkit's [-1, 1] video give the same ids and the clamped
    frames; the goal-conditioned clip in time order with ``context_indices=(T-1, 0)`` gives
    the original's rearranged tokens, and decodes back in time order."""
    tok, io = released[case]
    ctx = tok.context_length
    video = _pixels(io["frames_uint8"]) * 2 - 1
    with torch.no_grad():
        latents = tok.encode(video, context_frames=ctx)
        frames = tok.decode(latents)
    assert torch.equal(latents.values, io["context_token_ids"])
    assert torch.equal(latents.future, io["future_token_ids"])
    assert latents.context_indices == tuple(range(ctx))
    want = torch.cat([io["recon_context"], io["recon_future"]], dim=1) * 2 - 1
    _close(frames, want.clamp(-1, 1), "decode(encode(video))", atol=2 * ATOL)
    if "clip_uint8" in io:
        clip = _pixels(io["clip_uint8"]) * 2 - 1
        t = clip.shape[1]
        with torch.no_grad():
            goal = tok.encode(clip, context_indices=(t - 1, 0))
            goal_frames = tok.decode(goal)
        assert torch.equal(goal.values, io["context_token_ids"])
        assert torch.equal(goal.future, io["future_token_ids"])
        order = [t - 1, *range(t - 1)]  # model order: goal, f0, f1, ...
        _close(goal_frames[:, order], want.clamp(-1, 1), "goal clip decoded", atol=2 * ATOL)


@needs_fixtures
def test_converted_tokenizer_saves_and_loads(released, tmp_path):
    tok, io = released["oxe-64-act-free"]
    loaded = check_save_load(
        tok, forward=lambda m: m.decode_unit(io["context_token_ids"], io["future_token_ids"])
    )
    assert isinstance(loaded, IVideoGPTTokenizer) and loaded.context_length == 2
    tok.save_pretrained(tmp_path / "tok")
    assert isinstance(load_pretrained(tmp_path / "tok"), IVideoGPTTokenizer)


@needs_fixtures
@pytest.mark.parametrize("name", sorted(FULL_SIZES))
def test_full_size_keys_match_released_configs(name):
    """The named full-size configs built on the meta device have exactly the key → shape map
    (and parameter count) of the original constructors at the released sizes."""
    want = json.loads((PARITY / "keys_full" / f"{name}.json").read_text())
    counts = json.loads((PARITY / "keys_full" / "param_counts.json").read_text())
    with torch.device("meta"):
        tok = IVideoGPTTokenizer(**IVIDEOGPT_TOKENIZER_SIZES[FULL_SIZES[name]])
    got = {k: list(v.shape) for k, v in tok.state_dict().items()}
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert got == want
    assert tok.num_parameters() == counts[name]


# ---------------------------------------------------------------------- no fixtures needed
def _tiny(**overrides) -> IVideoGPTTokenizer:
    torch.manual_seed(0)
    return IVideoGPTTokenizer(**{**IVIDEOGPT_TOKENIZER_SIZES["tiny"], **overrides}).eval()


class TestTinyConformance(TokenizerTests):
    def make_model(self) -> IVideoGPTTokenizer:
        return _tiny()

    def make_inputs(self) -> torch.Tensor:
        return torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_future_frames_depend_on_context_and_are_independent():
    """A future frame's ids and pixels depend on the context (cross-attention) and on that
    frame only: changing one future frame leaves the other future frames unchanged."""
    tok = _tiny()
    gen = torch.Generator().manual_seed(2)
    video = torch.rand(1, 4, 3, 16, 16, generator=gen) * 2 - 1
    with torch.no_grad():
        base = tok.encode_unit((video + 1) / 2, context_frames=2)
        other = video.clone()
        other[:, 3] = torch.rand(3, 16, 16, generator=gen) * 2 - 1
        changed = tok.encode_unit((other + 1) / 2, context_frames=2)
        assert torch.equal(base.prequant_future[:, 0], changed.prequant_future[:, 0])
        assert not torch.equal(base.prequant_future[:, 1], changed.prequant_future[:, 1])
        moved = video.clone()
        moved[:, 0] = torch.rand(3, 16, 16, generator=gen) * 2 - 1
        recontext = tok.encode_unit((moved + 1) / 2, context_frames=2)
        assert not torch.equal(base.prequant_future, recontext.prequant_future)
        frames = tok.decode_unit(base.context_ids, base.future_ids)
        ids = base.context_ids.clone()
        ids[:, 0] = (ids[:, 0] + 1) % tok.vocab_size
        assert not torch.equal(frames[:, 2:], tok.decode_unit(ids, base.future_ids)[:, 2:])


def test_decoding_future_frames_one_at_a_time_from_a_cached_context():
    """decode_context once, then decode_future per frame equals decode_unit of the clip."""
    tok = _tiny()
    gen = torch.Generator().manual_seed(3)
    ctx = torch.randint(0, tok.vocab_size, (2, 2, 4, 4), generator=gen)
    fut = torch.randint(0, tok.future_vocab_size, (2, 3, 2, 2), generator=gen)
    with torch.no_grad():
        whole = tok.decode_unit(ctx, fut)
        context = tok.decode_context(ctx)
        steps = [tok.decode_future(context, fut[:, i : i + 1]) for i in range(3)]
    torch.testing.assert_close(torch.cat([context.frames, *steps], dim=1), whole)
    with pytest.raises(ValueError, match="context_length = 2"):
        tok.decode_future(tok.decode_context(ctx[:, :1]), fut)


def test_nearest_vq_takes_first_index_on_ties():
    vq = NearestVQ(4, 2)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]))
    out = vq(torch.tensor([[[1.0, 0.0], [0.5, 0.5], [-2.0, 0.0]]]))
    assert out.ids.tolist() == [[0, 0, 3]]
    assert torch.equal(vq.lookup(out.ids), torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]]))


def test_bad_inputs_are_rejected():
    tok = _tiny()
    video = torch.zeros(1, 4, 3, 16, 16)
    with pytest.raises(ValueError, match="context_length = 2"):
        tok.encode(video, context_frames=1)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        tok.encode_unit(video - 1, context_frames=2)
    with pytest.raises(ValueError, match="16x16"):
        tok.encode(torch.zeros(1, 4, 3, 32, 32), context_frames=2)
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode_unit(torch.full((1, 2, 4, 4), 64), torch.zeros(1, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="future_ids"):
        tok.decode_unit(torch.zeros(1, 2, 4, 4, dtype=torch.long), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="resolution"):
        IVideoGPTTokenizer(**{**IVIDEOGPT_TOKENIZER_SIZES["tiny"], "resolution": 20})


# ---------------------------------------------------------------------- loader
def _released_folder(tmp_path: Path) -> Path:
    """A tiny tokenizer written in the released folder layout."""
    tok = _tiny()
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    cfg = {**IVIDEOGPT_TOKENIZER_SIZES["tiny"]}
    cfg.pop("cross_attention_groups")
    config = {
        "_class_name": "CompressiveVQModel",
        "_diffusers_version": "0.27.0",
        "act_fn": "silu",
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "out_channels": 3,
        "in_channels": 3,
        "norm_type": "group",
        "sample_size": 32,
        "scaling_factor": 0.18215,
        "force_upcast": True,
        "lookup_from_codebook": True,
        "vq_embed_dim": None,
        "mid_block_add_attention": False,
        "context_length": 2,
        **cfg,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tok.state_dict(), folder / "diffusion_pytorch_model.safetensors")
    return folder


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_in_the_folder_is_refused(tmp_path):
    """A pickle whose unpickling would run code is refused without being unpickled, whatever
    its name, even beside the safetensors file."""
    marker = tmp_path / "pwned"
    for name in ("diffusion_pytorch_model.bin", "weights.data"):
        folder = tmp_path / name
        folder.mkdir()
        torch.save({"payload": _RunsCode(marker)}, folder / name)
        (folder / "config.json").write_text("{}")
        with pytest.raises(ValueError, match=rf"refusing to read .*pickle.*{name}"):
            load_released_tokenizer(folder)
    folder = _released_folder(tmp_path)
    (folder / "extra.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="pickle"):
        load_released_tokenizer(folder)
    assert not marker.exists()


def test_loader_reads_config_names_ignored_fields_and_checks_keys(tmp_path):
    folder = _released_folder(tmp_path)
    # the cross-attention groups are not a released field: the tiny one needs 4, so the
    # original default (32) would not divide 16 channels; load at the tiny's own groups
    with pytest.raises(ValueError, match="divisible"):
        load_released_tokenizer(folder)
    kwargs, ignored, defaulted = released_tokenizer_config(
        json.loads((folder / "config.json").read_text())
    )
    assert ignored == [
        "_class_name",
        "_diffusers_version",
        "force_upcast",
        "lookup_from_codebook",
        "sample_size",
        "scaling_factor",
    ]
    assert defaulted == [] and kwargs["patch_size"] == 2


def test_loader_at_released_groups(tmp_path):
    """The loader end to end on a small model whose widths suit the released 32 groups."""
    sizes = {**IVIDEOGPT_TOKENIZER_SIZES["tiny"], "block_out_channels": [32, 32, 32]}
    sizes.pop("cross_attention_groups")
    torch.manual_seed(0)
    tok = IVideoGPTTokenizer(**sizes).eval()
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    config = {
        "_class_name": "CompressiveVQModel",
        "mid_block_add_attention": False,
        "context_length": 2,
    }
    config.update(sizes)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tok.state_dict(), folder / "diffusion_pytorch_model.safetensors")
    result = read_released_tokenizer(folder)
    assert result.defaulted == ["vq_embed_dim", "in_channels"]
    assert "ignored config fields ['_class_name']" in result.summary
    video = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(
            tok.encode(video, context_frames=2).future,
            result.tokenizer.encode(video, context_frames=2).future,
        )

    state = load_file(folder / "diffusion_pytorch_model.safetensors")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    save_file(
        {k: v for k, v in state.items() if k != "quant_linear.bias"},
        broken / "diffusion_pytorch_model.safetensors",
    )
    with pytest.raises(ValueError, match=r"missing 1 key\(s\) \['quant_linear.bias'\]"):
        load_released_tokenizer(broken)
    save_file(
        {**state, "quant_linear.bias": torch.zeros(3)},
        broken / "diffusion_pytorch_model.safetensors",
    )
    with pytest.raises(ValueError, match="quant_linear.bias: \\(3,\\)"):
        load_released_tokenizer(broken)
    for bad, match in (
        ({"norm_type": "spatial"}, "norm_type"),
        ({"new_field": 1}, "unknown field"),
        ({"up_block_types": ["UpBlock2D"] * 3}, "up_block_types"),
    ):
        (broken / "config.json").write_text(json.dumps({**config, **bad}))
        with pytest.raises(ValueError, match=match):
            load_released_tokenizer(broken)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_released_tokenizer(tmp_path / "nowhere")
