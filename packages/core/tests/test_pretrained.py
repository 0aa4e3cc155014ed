import json
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from wmkit.core import ActionSpec, PretrainedLoadError, PretrainedMixin


class Net(nn.Module, PretrainedMixin):
    def __init__(self, width: int = 8, depth: int = 2, spec: ActionSpec | None = None):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return self.layers(x) * self.scale


class OtherNet(Net):
    pass


class Unsaveable(nn.Module, PretrainedMixin):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner


def test_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    net = Net(width=4, depth=3, spec=ActionSpec.multi_discrete([2, 3]))
    net.save_pretrained(tmp_path / "net")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "net").iterdir()}
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert config["width"] == 4 and config["_wmkit_class"].endswith("Net")
    loaded = Net.from_pretrained(tmp_path / "net")
    assert loaded.spec == net.spec and not loaded.training
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(3, 4)
    assert torch.equal(net(x), loaded(x))


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pretrained directory at .*local paths only"):
        Net.from_pretrained(tmp_path / "nope")
    Net().save_pretrained(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        Net.from_pretrained(tmp_path / "a")
    Net().save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        Net.from_pretrained(tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Net.from_pretrained(tmp_path / "file")


def test_corrupt_files(tmp_path):
    Net().save_pretrained(tmp_path / "a")
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(
        PretrainedLoadError, match=r"model.safetensors is not a readable safetensors"
    ):
        Net.from_pretrained(tmp_path / "a")
    Net().save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(PretrainedLoadError, match="config.json is not valid JSON"):
        Net.from_pretrained(tmp_path / "b")


def test_config_weights_mismatch(tmp_path):
    Net(width=8).save_pretrained(tmp_path / "a")
    config_path = tmp_path / "a" / "config.json"
    config = json.loads(config_path.read_text())
    config["width"] = 6
    config_path.write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match=r"shape mismatches.*\(8, 8\) vs model \(6, 6\)"):
        Net.from_pretrained(tmp_path / "a")
    config["width"], config["depth"] = 8, 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match=r"missing keys \['layers.2.bias'"):
        Net.from_pretrained(tmp_path / "a")
    config["depth"] = 2
    config_path.write_text(json.dumps(config))
    save_file(
        {**Net().state_dict(), "extra": torch.zeros(1)}, str(tmp_path / "a" / "model.safetensors")
    )
    with pytest.raises(PretrainedLoadError, match=r"unexpected keys \['extra'\]"):
        Net.from_pretrained(tmp_path / "a")


def test_wrong_class_and_unknown_arguments(tmp_path):
    Net().save_pretrained(tmp_path / "a")
    with pytest.raises(PretrainedLoadError, match="saved by .*Net; cannot load it as .*OtherNet"):
        OtherNet.from_pretrained(tmp_path / "a")
    config_path = tmp_path / "a" / "config.json"
    config = json.loads(config_path.read_text())
    config["colour"] = "red"
    config_path.write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match=r"\['colour'\]"):
        Net.from_pretrained(tmp_path / "a")


def test_overrides(tmp_path):
    Net(width=4).save_pretrained(tmp_path / "a")
    with pytest.raises(TypeError, match="no argument"):
        Net.from_pretrained(tmp_path / "a", colour=1)
    with pytest.raises(PretrainedLoadError, match="shape mismatches"):
        Net.from_pretrained(tmp_path / "a", width=5)


def test_refuses_to_save_non_json_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"\['inner'\] are not JSON-serialisable"):
        Unsaveable(nn.Linear(2, 2)).save_pretrained(tmp_path / "u")


def test_never_unpickles(tmp_path):
    """A directory holding only a pickle is refused, never loaded."""
    Net().save_pretrained(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").unlink()
    torch.save(Net().state_dict(), tmp_path / "a" / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        Net.from_pretrained(tmp_path / "a")


def test_load_pretrained_finds_the_class(tmp_path):
    from wmkit.core import ActionSpec, load_pretrained
    from wmkit.core.testing import ToyWorldModel

    model = ToyWorldModel(ActionSpec.discrete(5), hidden=4)
    model.save_pretrained(tmp_path / "w")
    loaded = load_pretrained(tmp_path / "w")
    assert type(loaded) is ToyWorldModel
    assert torch.equal(loaded.inp.weight, model.inp.weight)
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    config["_wmkit_class"] = "wmkit.nowhere.Model"
    (tmp_path / "w" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match="cannot be imported"):
        load_pretrained(tmp_path / "w")
    config["_wmkit_class"] = "wmkit.core.action_spec.ActionSpec"
    (tmp_path / "w" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match="not a wmkit model"):
        load_pretrained(tmp_path / "w")
    config["_wmkit_class"] = "json.JSONDecoder"
    (tmp_path / "w" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match="neither under 'wmkit.'"):
        load_pretrained(tmp_path / "w")
    with pytest.raises(FileNotFoundError, match="no pretrained directory"):
        load_pretrained(tmp_path / "missing")


def _module_that_records_its_import(directory, name):
    """A module on ``sys.path`` that writes ``<name>.imported`` beside itself when imported."""
    (directory / f"{name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path(__file__).with_name('{name}.imported').touch()\n"
        "class Model:\n    pass\n"
    )
    return directory / f"{name}.imported"


def test_load_pretrained_refuses_a_class_outside_wmkit_without_importing_it(tmp_path, monkeypatch):
    """A crafted config.json naming any module on sys.path is refused before the import."""
    from wmkit.core import load_pretrained

    code = tmp_path / "code"
    code.mkdir()
    marker = _module_that_records_its_import(code, "wmkit_test_side_effect")
    monkeypatch.syspath_prepend(str(code))
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "config.json").write_text(
        json.dumps({"_wmkit_class": "wmkit_test_side_effect.Model", "_wmkit_format": 1})
    )
    with pytest.raises(
        PretrainedLoadError, match=r"crafted/config.json names class wmkit_test_side_effect.Model"
    ):
        load_pretrained(crafted)
    assert "wmkit_test_side_effect" not in sys.modules
    assert not marker.exists()


def test_load_pretrained_takes_classes_registered_as_entry_points(tmp_path, monkeypatch):
    """A third-party model registered in the ``wmkit.models`` group loads; the other entries
    of the group are compared by name and never loaded."""
    from importlib.metadata import EntryPoint

    from wmkit.core import load_pretrained, pretrained

    code = tmp_path / "code"
    code.mkdir()
    (code / "wmkit_test_thirdparty.py").write_text(
        "from torch import nn\n"
        "from wmkit.core import PretrainedMixin\n"
        "class Model(nn.Module, PretrainedMixin):\n"
        "    def __init__(self, width: int = 3):\n"
        "        super().__init__()\n"
        "        self.lin = nn.Linear(width, width)\n"
    )
    marker = _module_that_records_its_import(code, "wmkit_test_other_entry")
    monkeypatch.syspath_prepend(str(code))
    for name in ("wmkit_test_thirdparty", "wmkit_test_other_entry"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    registry = [
        EntryPoint("other", "wmkit_test_other_entry:Model", pretrained.MODEL_ENTRY_POINT_GROUP),
        EntryPoint("third", "wmkit_test_thirdparty:Model", pretrained.MODEL_ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(
        pretrained,
        "entry_points",
        lambda group: registry if group == pretrained.MODEL_ENTRY_POINT_GROUP else [],
    )
    import wmkit_test_thirdparty

    wmkit_test_thirdparty.Model(width=2).save_pretrained(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert type(loaded).__name__ == "Model" and loaded.lin.in_features == 2
    assert "wmkit_test_other_entry" not in sys.modules and not marker.exists()
    monkeypatch.setattr(pretrained, "entry_points", lambda group: [])
    with pytest.raises(PretrainedLoadError, match="refusing to import it"):
        load_pretrained(tmp_path / "m")


class Head(nn.Module, PretrainedMixin):
    """Holds a frozen ``Net`` outside its state dict, by object or by the path it was saved to."""

    frozen_components = ("backbone",)

    def __init__(self, backbone: str | Net | None = None, width: int = 4):
        super().__init__()
        if isinstance(backbone, str):
            backbone = Net.from_pretrained(backbone)
        self.__dict__["backbone"] = backbone  # not a submodule
        self.out = nn.Linear(width, 1)


def test_frozen_components_travel_with_the_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    Net(width=4, depth=1).save_pretrained("backbone-run")
    head = Head("backbone-run")  # a working-directory path, as a config gives it
    head.save_pretrained("head")
    config = json.loads((tmp_path / "run" / "head" / "config.json").read_text())
    assert config["backbone"] == "./backbone"
    assert "backbone.layers.0.weight" not in Head.from_pretrained("head").state_dict()
    moved = tmp_path / "elsewhere" / "head"
    moved.parent.mkdir()
    (tmp_path / "run" / "head").rename(moved)
    monkeypatch.chdir(tmp_path)
    loaded = Head.from_pretrained(moved)  # resolved against its own directory, not the cwd
    x = torch.randn(2, 4)
    assert torch.equal(loaded.backbone(x), head.backbone(x))
    assert Head.from_pretrained(moved, backbone=None).backbone is None  # an override wins
    Head().save_pretrained(tmp_path / "bare")
    assert json.loads((tmp_path / "bare" / "config.json").read_text())["backbone"] is None
    assert not (tmp_path / "bare" / "backbone").exists()


def test_a_frozen_component_without_save_pretrained_is_refused_before_writing(tmp_path):
    head = Head()
    head.__dict__["backbone"] = nn.Linear(4, 4)
    with pytest.raises(TypeError, match="its backbone Linear has no save_pretrained"):
        head.save_pretrained(tmp_path / "h")
    assert not (tmp_path / "h").exists()


def test_upgrade_state_dict_loads_an_older_layout(tmp_path):
    torch.manual_seed(0)
    net = Net(width=4)
    save_file(
        {k: v for k, v in net.state_dict().items() if not k.startswith("layers.0.")}
        | {"old.weight": net.layers[0].weight.detach(), "old.bias": net.layers[0].bias.detach()},
        str(tmp_path / "model.safetensors"),
    )
    (tmp_path / "config.json").write_text(json.dumps({"width": 4}))

    class Upgraded(Net):
        @classmethod
        def upgrade_state_dict(cls, state):
            return {k.replace("old.", "layers.0."): v for k, v in state.items()}

    # without the upgrade the strict check names the old keys; with it the weights load
    with pytest.raises(PretrainedLoadError, match=r"unexpected keys \['old.bias', 'old.weight'"):
        Net.from_pretrained(tmp_path)
    loaded = Upgraded.from_pretrained(tmp_path)
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), net(x))


def test_upgrade_config_loads_older_arguments(tmp_path):
    Net(width=4).save_pretrained(tmp_path / "net")
    path = tmp_path / "net" / "config.json"
    config = json.loads(path.read_text())
    config["size"] = config.pop("width")  # an older version called it size
    config.pop("_wmkit_class")  # loaded below by a subclass
    path.write_text(json.dumps(config))

    class Upgraded(Net):
        @classmethod
        def upgrade_config(cls, config):
            return {("width" if k == "size" else k): v for k, v in config.items()}

    with pytest.raises(PretrainedLoadError, match=r"argument\(s\) \['size'\]"):
        Net.from_pretrained(tmp_path / "net")
    assert Upgraded.from_pretrained(tmp_path / "net").layers[0].in_features == 4


class RecordsMoves(Net):
    def to(self, *args, **kwargs):
        self.__dict__.setdefault("moves", []).append(args)
        return super().to(*args, **kwargs)


def test_from_pretrained_puts_the_model_on_map_location(tmp_path):
    RecordsMoves(width=4).save_pretrained(tmp_path / "net")
    net = RecordsMoves.from_pretrained(tmp_path / "net", map_location=torch.device("cpu"))
    assert net.moves == [(torch.device("cpu"),)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_from_pretrained_loads_onto_the_gpu(tmp_path):
    Net(width=4).save_pretrained(tmp_path / "net")
    net = Net.from_pretrained(tmp_path / "net", map_location="cuda")
    assert all(p.is_cuda for p in net.parameters()) and net.scale.is_cuda


def test_read_json_object_names_the_file(tmp_path):
    from wmkit.core.pretrained import read_json_object

    path = tmp_path / "config.json"
    path.write_text('{"a": 1}')
    assert read_json_object(path) == {"a": 1}
    path.write_text("[1, 2]")
    with pytest.raises(PretrainedLoadError, match="config.json must hold a JSON object"):
        read_json_object(path, PretrainedLoadError)
    path.write_text("{oops")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        read_json_object(path)
