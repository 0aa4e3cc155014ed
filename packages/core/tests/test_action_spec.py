import json

import pytest
import torch

from wmkit.core import ActionSpec


@pytest.fixture(params=["discrete", "multi_discrete", "continuous"])
def spec(request) -> ActionSpec:
    return {
        "discrete": ActionSpec.discrete(17),
        "multi_discrete": ActionSpec.multi_discrete([2, 2, 11, 11], names=["w", "s", "dx", "dy"]),
        "continuous": ActionSpec.continuous(4, low=[-1, -1, -1, 0], high=[1, 1, 1, 2], bins=64),
    }[request.param]


def test_json_round_trip(spec):
    text = spec.to_json()
    back = ActionSpec.from_json(text)
    assert back == spec
    assert json.loads(text)["kind"] == spec.kind
    assert hash(back) == hash(spec)


def test_sample_is_valid_and_seeded(spec):
    a = spec.sample((3, 5), generator=torch.Generator().manual_seed(1))
    b = spec.sample((3, 5), generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 5, *spec.action_shape) and a.dtype == spec.dtype
    assert torch.equal(a, b)
    spec.validate(a)


def test_tokens_round_trip(spec):
    actions = spec.sample((2, 6), generator=torch.Generator().manual_seed(0))
    tokens = spec.to_tokens(actions)
    assert tokens.shape == (2, 6, spec.num_tokens) and tokens.dtype == torch.long
    for k, size in enumerate(spec.token_vocab_sizes):
        assert tokens[..., k].min() >= 0 and tokens[..., k].max() < size
    back = spec.from_tokens(tokens)
    assert back.shape == actions.shape
    if spec.is_discrete:
        assert torch.equal(back, actions)
    else:  # within half a bin
        width = (torch.tensor(spec.high) - torch.tensor(spec.low)) / spec.bins
        assert ((back - actions).abs() <= width / 2 + 1e-6).all()


def test_discretize_edges():
    spec = ActionSpec.continuous(1, -1.0, 1.0, bins=4)
    ids = spec.discretize(torch.tensor([[-1.0], [-0.51], [0.0], [0.99], [1.0], [5.0]]))
    assert ids.squeeze(-1).tolist() == [0, 0, 2, 3, 3, 3]
    centres = spec.undiscretize(torch.arange(4).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(centres, torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    with pytest.raises(ValueError, match="continuous"):
        ActionSpec.discrete(3).discretize(torch.zeros(2))


@pytest.mark.parametrize(
    ("spec", "bad", "exc", "match"),
    [
        (ActionSpec.discrete(5), torch.zeros(2, 3, 1, dtype=torch.long), ValueError, r"\[B, T\]"),
        (ActionSpec.discrete(5), torch.zeros(2, 3), TypeError, "integer"),
        (ActionSpec.discrete(5), torch.full((2, 3), 5), ValueError, r"not in \[0, 4\]"),
        (ActionSpec.discrete(5), torch.full((2, 3), -1), ValueError, "out of range"),
        (ActionSpec.multi_discrete([2, 3]), torch.tensor([[[1, 3]]]), ValueError, r"\[0, 2\]"),
        (
            ActionSpec.multi_discrete([2, 3]),
            torch.zeros(1, 1, 3, dtype=torch.long),
            ValueError,
            "shape",
        ),
        (ActionSpec.continuous(2), torch.zeros(1, 1, 2, dtype=torch.long), TypeError, "float"),
        (ActionSpec.continuous(2), torch.tensor([[[0.0, 1.5]]]), ValueError, "outside"),
        (ActionSpec.continuous(2), torch.tensor([[[0.0, float("nan")]]]), ValueError, "NaN"),
        (ActionSpec.continuous(2), [[0.0, 0.0]], TypeError, "Tensor"),
    ],
)
def test_validate_errors_name_the_problem(spec, bad, exc, match):
    with pytest.raises(exc, match=match):
        spec.validate(bad)


def test_validate_single_step():
    spec = ActionSpec.continuous((2, 3))
    spec.validate(torch.zeros(4, 2, 3), batch_dims=1)
    with pytest.raises(ValueError, match="shape"):
        spec.validate(torch.zeros(4, 2, 3), batch_dims=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "discrete"}, "n >= 1"),
        ({"kind": "multi_discrete", "nvec": []}, "nvec"),
        ({"kind": "continuous", "shape": (2,), "low": (0.0,), "high": (1.0, 1.0)}, "low with 2"),
        ({"kind": "continuous", "shape": (1,), "low": (1.0,), "high": (1.0,)}, "low < high"),
        ({"kind": "joystick"}, "kind"),
    ],
)
def test_invalid_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ActionSpec(**kwargs)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown ActionSpec fields"):
        ActionSpec.from_dict({"kind": "discrete", "n": 3, "nn": 4})


def test_check_compatible():
    ActionSpec.discrete(5).check_compatible(ActionSpec.discrete(5))
    with pytest.raises(ValueError, match=r"mismatched action spec.*n=5.*n=6"):
        ActionSpec.discrete(5).check_compatible(ActionSpec.discrete(6))
    with pytest.raises(ValueError, match="mismatched"):
        ActionSpec.continuous(2, -1, 1).check_compatible(ActionSpec.continuous(2, 0, 1))


def test_features_one_hot_and_rescaled():
    md = ActionSpec.multi_discrete([2, 3])
    f = md.features(torch.tensor([[1, 2], [0, 0]]))
    assert md.feature_dim == 5 and f.tolist() == [[0, 1, 0, 0, 1], [1, 0, 1, 0, 0]]
    box = ActionSpec.continuous(2, low=[0.0, -2.0], high=[1.0, 2.0])
    g = box.features(torch.tensor([[[0.0, 2.0], [0.5, 0.0]]]))  # [1, 2, 2]
    assert box.feature_dim == 2 and g.tolist() == [[[-1.0, 1.0], [0.0, 0.0]]]
    assert ActionSpec.discrete(4).features(torch.tensor([3])).tolist() == [[0, 0, 0, 1]]


def test_coerce_accepts_spec_mapping_and_json(spec):
    assert ActionSpec.coerce(spec) is spec
    assert ActionSpec.coerce(spec.to_dict()) == spec
    assert ActionSpec.coerce(spec.to_json()) == spec
    assert ActionSpec.coerce({"kind": "discrete", "n": 15}) == ActionSpec.discrete(15)
    assert ActionSpec.coerce_optional(None) is None


def test_coerce_errors_name_the_argument():
    with pytest.raises(TypeError, match="my_spec must be an ActionSpec, a mapping"):
        ActionSpec.coerce(15, "my_spec")
    with pytest.raises(ValueError, match="my_spec must be a JSON object"):
        ActionSpec.coerce("{kind: discrete", "my_spec")
    with pytest.raises(ValueError, match=r"my_spec: unknown ActionSpec fields \['num'\]"):
        ActionSpec.coerce({"kind": "discrete", "num": 15}, "my_spec")
    with pytest.raises(ValueError, match="my_spec: a discrete ActionSpec needs n"):
        ActionSpec.coerce({"kind": "discrete"}, "my_spec")
