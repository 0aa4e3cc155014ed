"""Models saved by wmkit-diffusion-world 0.1.x (``fixtures/v0_1/``, made by ``v0_1_outputs.py``)
still load, and give the same rollouts, steps and training losses under the same seeds.

Outputs are bit-identical on the CPU that recorded the fixtures; another CPU's kernels round
floats differently (a few ulps, amplified through the sampler's steps to at most ~5e-6 here),
so floats are compared to 1e-5 and everything else exactly."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_v0_1_outputs import CASES, FIXTURES, outputs

from wmkit.diffusion_world import DiffusionWorldModel


@pytest.mark.parametrize("case", sorted(CASES))
def test_v0_1_directory_loads_with_identical_outputs(case):
    directory = FIXTURES / case
    expected = load_file(str(directory / "outputs.safetensors"))
    model = DiffusionWorldModel.from_pretrained(directory)
    got = outputs(model)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(
                got[key],
                value,
                rtol=0,
                atol=1e-5,
                msg=lambda m, key=key: f"{case}: {key} differs: {m}",
            )
        else:
            assert torch.equal(got[key], value), f"{case}: {key} differs"
