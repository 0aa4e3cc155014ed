import pytest
import torch

from wmkit.apps.play.bindings import Bindings, InputState, default_bindings
from wmkit.core import ActionSpec

CRAFTER = ActionSpec.discrete(
    6, names=["noop", "move_left", "move_right", "move_up", "move_down", "do"]
)


def test_discrete_defaults_follow_names():
    b = default_bindings(CRAFTER)
    keys = b.components[0].keys
    assert keys["a"] == 1 and keys["d"] == 2 and keys["ArrowUp"] == 3 and keys["ArrowDown"] == 4
    assert keys[" "] == 5 and 0 not in keys.values()
    assert b.action(InputState()).item() == 0
    assert b.action(InputState(keys=["a"])).item() == 1
    assert b.action(InputState(keys=["a", " "])).item() == 5  # most recent press wins
    assert b.action(InputState(keys=["unbound"])).item() == 0
    assert "Space: do" in b.describe()


def test_every_discrete_action_reachable_without_names():
    spec = ActionSpec.discrete(17)
    b = default_bindings(spec)
    assert sorted(b.components[0].keys.values()) == list(range(1, 17))


def test_multi_discrete_buttons_and_mouse_bins():
    spec = ActionSpec.multi_discrete([2, 2, 11], names=["attack", "move_left", "dx"])
    b = default_bindings(spec)
    assert b.components[0].keys == {" ": 1.0}
    a = b.action(InputState(keys=[" "], mouse=(10.0, 0.0)))
    spec.validate(a.unsqueeze(0), batch_dims=1)
    assert a.tolist() == [1, 0, 7]  # centre 5 + 10 px * 0.2
    assert b.action(InputState(mouse=(1e4, 0))).tolist()[2] == 10  # clipped to the last bin


def test_continuous_keys_and_mouse():
    spec = ActionSpec.continuous(4, -1.0, 1.0)
    b = default_bindings(spec)
    a = b.action(InputState(keys=["d", "s"]))
    assert a.dtype == torch.float32 and a.tolist() == [1.0, -1.0, 0.0, 0.0]
    m = b.action(InputState(mouse=(50.0, -500.0)))
    assert m[0].item() == pytest.approx(0.5) and m[1].item() == -1.0


def test_save_load_and_mismatch(tmp_path):
    b = default_bindings(CRAFTER)
    b.components[0].keys["x"] = 5.0
    b.save(tmp_path / "keys.json")
    loaded = Bindings.load(tmp_path / "keys.json", CRAFTER)
    assert loaded.action(InputState(keys=["x"])).item() == 5
    with pytest.raises(ValueError, match="mismatched bindings' action spec"):
        Bindings.load(tmp_path / "keys.json", ActionSpec.discrete(4))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not a bindings file"):
        Bindings.load(tmp_path / "bad.json", CRAFTER)
    with pytest.raises(FileNotFoundError):
        Bindings.load(tmp_path / "none.json", CRAFTER)
    b.components[0].keys["y"] = 9.0
    with pytest.raises(ValueError, match="outside"):
        Bindings(CRAFTER, b.components)
