"""``ARWorldModel(transformer, layout, decoder)``: components as objects or as
``{"class_path", "init_args"}``, the same model as the flat arguments of 0.1.x built
(bit-identical outputs), a decoder defined here plugged in by name, save/load of each form."""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from helpers import flat_model, squares

from wmkit.ar_world import (
    SIZES,
    ARWorldModel,
    CrossFrameDecoder,
    DiagonalDecoder,
    RasterDecoder,
    TokenLayout,
    Transformer,
    raster_decode,
)
from wmkit.ar_world.legacy_config import upgrade_flat_config
from wmkit.core.testing import ToyCompressiveTokenizer, ToyTokenizer, check_config_runs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class CountingDecoder(RasterDecoder):
    """A decoder defined outside the package: raster order, counting the frames it draws
    (``label`` shows that its own ``__init__`` arguments reach it from a config)."""

    def __init__(self, label: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.frames = 0

    def decode_grid(self, feed, first, model, state):
        self.frames += 1
        return raster_decode(feed, first, model.layout.h, model.layout.w, self.sampler)


# the test module's own name (a path with dashes under importlib) is no import path: alias it
PLUGIN_MODULE = "wmkit_ar_world_test_components"
sys.modules[PLUGIN_MODULE] = sys.modules[__name__]


def _outputs(model: ARWorldModel) -> dict[str, torch.Tensor]:
    _, frames, actions = squares(1, 9, seed=3)
    out = {}
    n = model.max_frames
    tokens, future = model.encode_clip(frames[:, :n])
    out["logits"] = model(tokens, actions[:, :n], None, future).frame_logits
    torch.manual_seed(1)
    rollout = model.rollout(frames[:, :2], actions[:, 1:7], actions[:, :1])
    out |= {"frames": rollout.frames, "rewards": rollout.rewards, "dones": rollout.dones}
    torch.manual_seed(2)
    state = model.reset(frames[:, :2], actions[:, :1])
    for i in range(3):
        step = model.step(state, actions[:, 2 + i])
        out[f"step{i}"], state = step.frame, step.state
    return out


CASES = {  # flat arguments (the old way), and the same model's components (the new way)
    "raster_tokens": (
        {"top_k": 4, "max_frames": 4},
        lambda: {"decoder": RasterDecoder(top_k=4), "max_frames": 4},
    ),
    "diagonal_embedding_guided": (
        {"action_mode": "embedding", "decoding": "diagonal", "window": 2, "guidance_scale": 2.0,
         "max_frames": 4, "refresh_keep": 1},
        lambda: {"layout": TokenLayout("embedding"), "max_frames": 4,
                 "decoder": DiagonalDecoder(window=2, guidance_scale=2.0, refresh_keep=1)},
    ),
    "compressive_cross_frame_small": (
        {"size": "small", "decoding": "diagonal", "window": 2, "cross_frame": True,
         "max_frames": 5, "compressive": True},
        lambda: {"transformer": Transformer(**SIZES["small"]), "max_frames": 5,
                 "decoder": CrossFrameDecoder(window=2)},
    ),
}  # fmt: skip


def _tokenizer(compressive: bool):
    if compressive:
        return ToyCompressiveTokenizer(patch=4, future_patch=2, levels=2, context_frames=2)
    return ToyTokenizer(patch=4, levels=2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_components_build_the_model_the_flat_arguments_built(name):
    flat, components = dict(CASES[name][0]), CASES[name][1]
    compressive = flat.pop("compressive", False)
    spec = squares()[0].action_spec
    torch.manual_seed(0)
    old = flat_model(spec, _tokenizer(compressive), **flat).eval()
    torch.manual_seed(0)  # the components are built after the seed, as the model's own are
    new = ARWorldModel(spec, _tokenizer(compressive), **components()).eval()
    assert type(new.decoder) is type(old.decoder)
    for key, value in old.state_dict().items():
        assert torch.equal(new.state_dict()[key], value), key
    expected, got = _outputs(old), _outputs(new)
    for key, value in expected.items():
        assert torch.equal(got[key], value), f"{name}: {key} differs"


def test_specs_and_objects_build_the_same_model(tmp_path):
    spec = squares()[0].action_spec
    torch.manual_seed(0)
    objects = {"transformer": Transformer(**SIZES["tiny"]), "layout": TokenLayout("tokens"),
               "decoder": DiagonalDecoder(window=3, temperature=0.0)}  # fmt: skip
    a = ARWorldModel(spec, _tokenizer(False), max_frames=4, **objects).eval()
    specs = {name: obj.to_config() for name, obj in objects.items()}
    json.dumps(specs)  # plain JSON
    torch.manual_seed(0)
    b = ARWorldModel(spec, _tokenizer(False), max_frames=4, **specs).eval()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    a.save_pretrained(tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert {k: saved[k] for k in specs} == specs  # objects are recorded as their specs
    loaded = ARWorldModel.from_pretrained(tmp_path / "a")
    assert isinstance(loaded.decoder, DiagonalDecoder) and loaded.decoder.window == 3
    expected, got = _outputs(a), _outputs(loaded)
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_a_decoder_defined_here_plugs_in_by_name(tmp_path):
    spec = squares()[0].action_spec
    named = {"class_path": f"{PLUGIN_MODULE}.CountingDecoder",
             "init_args": {"label": "mine", "temperature": 0.0}}  # fmt: skip
    torch.manual_seed(0)
    model = ARWorldModel(spec, _tokenizer(False), decoder=named, max_frames=4).eval()
    torch.manual_seed(0)
    plain = ARWorldModel(spec, _tokenizer(False), decoder=RasterDecoder(temperature=0.0),
                         max_frames=4).eval()  # fmt: skip
    _, frames, actions = squares()
    a = model.rollout(frames[:, :2], actions[:, 1:4]).frames
    assert torch.equal(a, plain.rollout(frames[:, :2], actions[:, 1:4]).frames)
    assert type(model.decoder).__name__ == "CountingDecoder" and model.decoder.frames == 3
    model.save_pretrained(tmp_path / "m")
    loaded = ARWorldModel.from_pretrained(tmp_path / "m")
    assert loaded.decoder.label == "mine" and loaded.decoder.sampler.temperature == 0.0
    # and in a YAML config, trained with the stage's own command
    cfg = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    cfg["model"]["init_args"]["model"]["init_args"]["decoder"] = named
    path = tmp_path / "plugged.yaml"
    path.write_text(yaml.safe_dump(cfg))
    check_config_runs(path, tmp_path / "run")


def test_flat_configs_upgrade_to_components():
    flat = {"action_spec": {"kind": "discrete", "n": 5}, "tokenizer": "./tokenizer",
            "size": "small", "decoding": "diagonal", "window": 2, "cross_frame": True,
            "action_mode": "embedding", "gradient_checkpointing": True, "max_frames": 6,
            "_wmkit_class": "wmkit.ar_world.world_model.ARWorldModel"}  # fmt: skip
    up = ARWorldModel.upgrade_config(flat)
    assert up["transformer"] == {
        "class_path": "wmkit.ar_world.transformer.Transformer",
        "init_args": {**SIZES["small"], "gradient_checkpointing": True},
    }
    assert up["layout"]["init_args"] == {"action_mode": "embedding", "context_frames": None}
    assert up["decoder"]["class_path"].endswith("CrossFrameDecoder")
    assert up["decoder"]["init_args"]["window"] == 2
    assert up["max_frames"] == 6 and up["_wmkit_class"] == flat["_wmkit_class"]
    assert not any(k in up for k in ("size", "decoding", "window", "action_mode"))
    assert ARWorldModel.upgrade_config(up) == up  # today's configs pass through
    with pytest.raises(ValueError, match="not both"):
        upgrade_flat_config({"size": "tiny", "decoder": {"class_path": "x.Y"}})
    with pytest.raises(ValueError, match="cross_frame"):
        upgrade_flat_config({"cross_frame": True})
    with pytest.raises(ValueError, match="size"):
        upgrade_flat_config({"size": "huge"})


def test_bad_components_are_refused(tmp_path):
    spec = squares()[0].action_spec
    tok = _tokenizer(False)
    with pytest.raises(ValueError, match="cannot be imported"):
        ARWorldModel(spec, tok, decoder={"class_path": "wmkit.ar_world.NoSuchDecoder"})
    with pytest.raises(TypeError, match="not a TokenDecoder"):
        ARWorldModel(spec, tok, decoder={"class_path": "wmkit.ar_world.TokenLayout"})
    with pytest.raises(ValueError, match="class_path"):
        ARWorldModel(spec, tok, layout="tokens")
    with pytest.raises(ValueError, match="unknown key"):
        ARWorldModel(spec, tok, layout={"class_path": "wmkit.ar_world.TokenLayout", "x": 1})
    with pytest.raises(ValueError, match="refresh_keep"):
        ARWorldModel(spec, tok, decoder=RasterDecoder(refresh_keep=4), max_frames=4)
    with pytest.raises(ValueError, match="action_mode"):
        TokenLayout("pixels")

    class Bare(torch.nn.Module):  # a transformer without to_config: nothing to record
        def __init__(self) -> None:
            super().__init__()
            self.inner = Transformer(**SIZES["tiny"])
            self.dim = self.inner.dim

        def forward(self, x, positions, cache=None):
            return self.inner(x, positions, cache)

    model = ARWorldModel(spec, tok, transformer=Bare(), max_frames=4)
    with pytest.raises(TypeError, match="transformer"):
        model.save_pretrained(tmp_path / "m")
