"""``wmkit convert ivideogpt``: released folders become ``OUT/world`` + ``OUT/tokenizer``;
action-conditioned vs action-free is read from the weights, goal conditioning from the flag or
the folder name; pickle files are refused; the converted weights give the original code's
logits (parity fixtures) and cover the full-size releases' keys."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import (
    ACT_COND,
    CASES,
    LOGITS_ATOL,
    PARITY,
    RecordedTokenizer,
    case_json,
    io,
    needs_fixtures,
    video,
)

from wmkit.ar_world.convert_ivideogpt import (
    convert_ivideogpt,
    layout_from_tokenizer_config,
    world_state_dict,
)
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.ivideogpt_world_model import IVideoGPTWorldModel
from wmkit.ar_world.llama import LLAMA_SIZES, LlamaConfig
from wmkit.core import load_pretrained
from wmkit.core.cli import main as wmkit_main
from wmkit.core.testing import ToyCompressiveTokenizer

HF_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "hidden_act": "silu",
    "hidden_size": 32, "intermediate_size": 48, "max_position_embeddings": 1024,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 1,
    "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-6, "rope_scaling": None,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "vocab_size": 130,
}  # fmt: skip
TOKENIZER = {
    "_class_name": "CompressiveVQModel", "block_out_channels": [8, 8, 8], "context_length": 2,
    "num_vq_embeddings": 64, "num_dyn_embeddings": 64, "patch_size": 4, "resolution": 64,
}  # fmt: skip


def toy_tokenizer() -> ToyCompressiveTokenizer:
    """64×64 frames → 16×16 context ids (64 codes), 4×4 future ids (64 codes)."""
    return ToyCompressiveTokenizer(patch=4, future_patch=4, levels=4)


def write_release(folder: Path, action_dim: int | None) -> dict[str, torch.Tensor]:
    """A tiny folder in the released layout (random weights); returns its transformer weights."""
    (folder / "transformer").mkdir(parents=True)
    (folder / "tokenizer").mkdir()
    (folder / "transformer" / "config.json").write_text(json.dumps(HF_LLAMA))
    (folder / "tokenizer" / "config.json").write_text(json.dumps(TOKENIZER))
    torch.manual_seed(0)
    model = IVideoGPTTransformer(LlamaConfig.from_hf(HF_LLAMA), action_dim)
    state = model.state_dict() if action_dim else model.llm.state_dict()
    state = {k: torch.randn_like(v) for k, v in state.items()}
    save_file(state, str(folder / "transformer" / "model.safetensors"))
    return state


@pytest.fixture
def released_tokenizer(monkeypatch):
    """Stand in for wmkit-tokenizers' iVideoGPT tokenizer converter (another package)."""
    module = types.ModuleType("wmkit.tokenizers.convert_ivideogpt")
    module.load_released_tokenizer = lambda folder: toy_tokenizer()
    monkeypatch.setitem(sys.modules, "wmkit.tokenizers.convert_ivideogpt", module)


@pytest.mark.parametrize(
    ("name", "action_dim", "kind"),
    [("robonet-64-act-cond", 5, "action-conditioned"), ("oxe-64-act-free", None, "action-free"),
     ("oxe-64-goal-cond", None, "goal-conditioned")],
)  # fmt: skip
def test_cli_writes_world_and_tokenizer(
    tmp_path, capsys, released_tokenizer, name, action_dim, kind
):
    state = write_release(tmp_path / name, action_dim)
    out = tmp_path / "out"
    assert wmkit_main(["convert", "ivideogpt", str(tmp_path / name), "--out", str(out)]) == 0
    assert f"ivideogpt {kind} 64x64" in capsys.readouterr().out
    world = load_pretrained(out / "world")
    assert isinstance(world, IVideoGPTWorldModel)
    assert world.goal_conditioned == (kind == "goal-conditioned")
    assert world.action_spec.action_shape == ((action_dim,) if action_dim else ())
    ours = world.state_dict()
    for key, value in world_state_dict(state).items():
        assert torch.equal(ours[key], value), key
    tokenizer = load_pretrained(out / "tokenizer")
    assert isinstance(tokenizer, ToyCompressiveTokenizer)
    frames = torch.rand(1, 2, 3, 64, 64) * 2 - 1
    actions = torch.zeros(1, 1, action_dim) if action_dim else torch.zeros(1, 1, dtype=torch.long)
    goal = {"goal_frame": frames[:, 0]} if world.goal_conditioned else {}
    observed = frames[:, 1:] if world.goal_conditioned else frames
    assert world.rollout(observed, actions, **goal).frames.shape == (1, 1, 3, 64, 64)


def test_goal_flag_overrides_the_name(tmp_path, released_tokenizer):
    write_release(tmp_path / "plain", None)
    assert convert_ivideogpt(tmp_path / "plain", goal_conditioned=True).kind == "goal-conditioned"
    assert convert_ivideogpt(tmp_path / "plain").kind == "action-free"
    write_release(tmp_path / "acted", 4)
    with pytest.raises(ValueError, match="goal-conditioned, but the weights hold action_linear"):
        convert_ivideogpt(tmp_path / "acted", goal_conditioned=True)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_files_are_refused(tmp_path, released_tokenizer):
    marker = tmp_path / "pwned"
    write_release(tmp_path / "release", 4)
    torch.save(
        {"payload": _RunsCode(marker)}, tmp_path / "release" / "transformer" / "pytorch_model.bin"
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"refusing to read .*pytorch_model\.bin.*pickle"):
        wmkit_main(["convert", "ivideogpt", str(tmp_path / "release"), "--out", str(out)])
    assert not marker.exists() and not out.exists()


def test_mismatched_or_missing_files_are_named(tmp_path, released_tokenizer):
    write_release(tmp_path / "r", None)
    (tmp_path / "r" / "transformer" / "config.json").write_text(
        json.dumps({**HF_LLAMA, "vocab_size": 131})
    )
    with pytest.raises(ValueError, match="vocab_size 131 is not num_vq_embeddings"):
        convert_ivideogpt(tmp_path / "r")
    (tmp_path / "r" / "transformer" / "model.safetensors").unlink()
    (tmp_path / "r" / "transformer" / "config.json").write_text(json.dumps(HF_LLAMA))
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        convert_ivideogpt(tmp_path / "r")


def test_layout_follows_the_tokenizer_config():
    lay = layout_from_tokenizer_config(
        {**TOKENIZER, "block_out_channels": [1] * 5, "resolution": 256}
    )
    assert (lay.context_grid, lay.future_grid, lay.context_frames) == ((16, 16), (4, 4), 2)
    with pytest.raises(ValueError, match="not an iVideoGPT"):
        layout_from_tokenizer_config({"resolution": 64})


@pytest.mark.parametrize(
    ("name", "size", "action_dim"),
    [
        ("transformer-138m", "ivideogpt-138m", None),
        ("transformer-medium-436m", "ivideogpt-436m", None),
        ("transformer-138m-act-cond-a4", "ivideogpt-138m", 4),
        ("transformer-138m-act-cond-a5", "ivideogpt-138m", 5),
    ],
)
@needs_fixtures
def test_converted_keys_cover_the_full_size_releases(name, size, action_dim):
    released = json.loads((PARITY / "keys_full" / f"{name}.json").read_text())
    mapped = world_state_dict({k: torch.empty(v, device="meta") for k, v in released.items()})
    with torch.device("meta"):
        model = IVideoGPTTransformer(LLAMA_SIZES[size], action_dim)
    ours = {f"transformer.{k}": v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in mapped.items()} == ours


@needs_fixtures
@pytest.mark.parametrize("case", CASES)
def test_fixture_weights_give_the_recorded_logits(tmp_path, case):
    ref, c = io(case), case_json(case)
    shutil.copytree(PARITY / case, tmp_path / case)  # the folder name carries goal-cond
    tok = RecordedTokenizer(video(case)[:, : c["context_length"]], ref["context_token_ids"], 64, 48)
    converted = convert_ivideogpt(tmp_path / case, tokenizer=tok)
    kind = "goal-conditioned" if c["goal_conditioned"] else "action-free"
    assert converted.kind == ("action-conditioned" if case in ACT_COND else kind)
    with torch.no_grad():
        logits = converted.world(
            ref["context_token_ids"], ref["future_token_ids"], ref.get("actions")
        )
    assert (logits - ref["logits"]).abs().max() < LOGITS_ATOL


HAS_TOKENIZER = importlib.util.find_spec("wmkit.tokenizers") is not None and (
    importlib.util.find_spec("wmkit.tokenizers.convert_ivideogpt") is not None
)


@needs_fixtures
@pytest.mark.skipif(
    not HAS_TOKENIZER,
    reason="wmkit.tokenizers.convert_ivideogpt (the iVideoGPT tokenizer, wmkit-tokenizers) is "
    "not installed, so the end-to-end conversion cannot run",
)
@pytest.mark.parametrize("case", CASES)
def test_end_to_end_conversion_reproduces_the_recorded_generation(tmp_path, case):
    ref, c = io(case), case_json(case)
    out = tmp_path / "out"
    assert wmkit_main(["convert", "ivideogpt", str(PARITY / case), "--out", str(out)]) == 0
    world = IVideoGPTWorldModel.from_pretrained(out / "world", temperature=0.0)  # greedy
    frames, ctx = video(case), c["context_length"]
    assert torch.equal(world.encode_context(frames[:, :ctx]), ref["context_token_ids"])
    steps = c["generated_frames"]
    if case in ACT_COND:
        actions = ref["actions"][:, ctx - 1 : ctx - 1 + steps]
    else:
        actions = torch.zeros(1, steps, dtype=torch.long)
    goal = {"goal_frame": frames[:, 0]} if c["goal_conditioned"] else {}
    observed = frames[:, 1:ctx] if c["goal_conditioned"] else frames[:, :ctx]
    with torch.no_grad():
        got = world.rollout(observed, actions, **goal).frames
    expected = (ref["gen_frames"] * 2 - 1).clamp(-1, 1)  # upstream decodes to [0, 1]
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
