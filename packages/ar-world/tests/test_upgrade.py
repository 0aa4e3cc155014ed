"""Directories saved by wmkit-ar-world 0.1.x still load, and give bit-identical outputs.

``fixtures/v0_1/`` holds tiny models saved by 0.1.x (``make_fixtures.py``) with their
rollouts, steps and a training loss recorded under fixed seeds; each is loaded with
``from_pretrained`` and replayed here: token ids exactly, floats within 1e-6 (they were
recorded on another CPU, whose matmul rounding differs by an ulp; sampled tokens and decoded
frames come out the same). These ``config.json`` files hold
the flat arguments that ``save_pretrained`` wrote until the model took components, so they
also stand for directories written before that change; ``ARWorldModel.upgrade_config`` maps
them.
"""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "v0_1"))
from make_fixtures import CASES, HERE, record

from wmkit.ar_world import ARWorldModel, CrossFrameDecoder

FIXTURES = HERE
PRE_COMPONENTS = HERE.parent / "pre_components"


def _replay(directory: Path, compressive: bool) -> None:
    expected = load_file(str(directory / "outputs.safetensors"))
    model = ARWorldModel.from_pretrained(directory)
    data = {
        "frames": expected["input.frames_uint8"].float().div(127.5).sub(1.0),
        "actions": expected["input.actions"],
        "rewards": expected["input.rewards"].float(),
    }
    got = record(model, data, compressive)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if value.is_floating_point():  # matmul rounding differs across CPUs by an ulp
            msg = f"{directory.name}: {key}"
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=msg)
        else:
            assert torch.equal(got[key], value), f"{directory.name}: {key} differs"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_0_1_directory_loads_and_replays_bit_identically(name):
    _replay(FIXTURES / name, CASES[name].get("compressive", False))


def test_a_directory_saved_before_the_components_loads_and_replays():
    """Saved with flat arguments by the code just before ``ARWorldModel`` took components
    (``fixtures/pre_components/make_fixture.py``): they load through ``upgrade_config``."""
    directory = PRE_COMPONENTS / "diagonal_cross_frame_sampling"
    saved = json.loads((directory / "config.json").read_text())
    assert saved["decoding"] == "diagonal" and "decoder" not in saved  # the flat form
    _replay(directory, compressive=False)
    model = ARWorldModel.from_pretrained(directory)
    assert isinstance(model.decoder, CrossFrameDecoder)
    assert (model.decoder.window, model.decoder.offset, model.refresh_keep) == (3, 2, 2)
