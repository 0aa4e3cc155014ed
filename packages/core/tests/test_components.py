"""Components from ``{"class_path", "init_args"}`` or objects, and back to that form."""

import json

import pytest
from torch import nn

from wmkit.core import build_component, init_config
from wmkit.core.components import record_components


class Part:
    def __init__(self, width: int = 2, names: tuple[str, ...] = ("a",)) -> None:
        self.width, self.names = width, names

    def to_config(self):
        return init_config(self)


class WiderPart(Part):
    def __init__(self, depth: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.depth = depth


class Opaque:
    def __init__(self, secret: int = 0) -> None:
        self._secret = secret


def test_a_spec_builds_and_an_object_passes_through():
    spec = {"class_path": "torch.nn.Linear", "init_args": {"in_features": 2, "out_features": 3}}
    layer = build_component(spec, nn.Module, "net")
    assert isinstance(layer, nn.Linear) and layer.out_features == 3
    assert build_component(layer, nn.Module, "net") is layer
    part = build_component({"class_path": f"{__name__}.Part"}, Part, "part")
    assert part.width == 2


def test_init_config_round_trips_through_the_mro():
    part = WiderPart(depth=3, width=5, names=("x", "y"))
    config = part.to_config()
    assert config["class_path"].endswith("WiderPart")
    assert config["init_args"] == {"depth": 3, "width": 5, "names": ["x", "y"]}
    json.dumps(config)
    rebuilt = build_component(
        {"class_path": f"{__name__}.WiderPart", "init_args": config["init_args"]}, Part, "p"
    )
    assert (rebuilt.depth, rebuilt.width, tuple(rebuilt.names)) == (3, 5, ("x", "y"))
    with pytest.raises(TypeError, match="secret"):
        init_config(Opaque())


def test_bad_specs_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="net must be an object or a dict"):
        build_component("linear", nn.Module, "net")
    with pytest.raises(ValueError, match="net class_path 'torch.nn.Nope' cannot be imported"):
        build_component({"class_path": "torch.nn.Nope"}, nn.Module, "net")
    with pytest.raises(ValueError, match="unknown key"):
        build_component({"class_path": "torch.nn.Identity", "args": {}}, nn.Module, "net")
    with pytest.raises(TypeError, match="built a Part, not a Module"):
        build_component({"class_path": f"{__name__}.Part"}, nn.Module, "net")


def test_record_components_keeps_specs_and_asks_objects():
    specs = {"a": {"class_path": "x.Y"}, "b": Part(width=4), "c": Opaque()}
    built = {"a": None, "b": specs["b"], "c": specs["c"]}
    saved = record_components({"c": "stale", "other": 1}, specs, built)
    assert saved["a"] == {"class_path": "x.Y"} and saved["b"]["init_args"]["width"] == 4
    assert "c" not in saved and saved["other"] == 1
