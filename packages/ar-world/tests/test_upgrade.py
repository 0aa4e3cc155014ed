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

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "v0_1"))
from make_fixtures import CASES, HERE, record

from wmkit.ar_world import ARWorldModel

FIXTURES = HERE


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_0_1_directory_loads_and_replays_bit_identically(name):
    expected = load_file(str(FIXTURES / name / "outputs.safetensors"))
    model = ARWorldModel.from_pretrained(FIXTURES / name)
    data = {
        "frames": expected["input.frames_uint8"].float().div(127.5).sub(1.0),
        "actions": expected["input.actions"],
        "rewards": expected["input.rewards"].float(),
    }
    got = record(model, data, CASES[name].get("compressive", False))
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if value.is_floating_point():  # matmul rounding differs across CPUs by an ulp
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=f"{name}: {key}")
        else:
            assert torch.equal(got[key], value), f"{name}: {key} differs"
