"""``count_decoded_frames``: how many frames a video reader decodes, for the tests that
check a reader seeks to a window instead of decoding an episode from its start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["count_decoded_frames"]


class _CountingContainer:
    """A PyAV container that counts the frames it decodes into ``counter[0]``."""

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self._inner, self._counter = inner, counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _CountingContainer:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._inner.__exit__(*exc)

    def decode(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for frame in self._inner.decode(*args, **kwargs):
            self._counter[0] += 1
            yield frame


def count_decoded_frames(monkeypatch: Any) -> list[int]:
    """Patch ``av.open`` (through pytest's ``monkeypatch``) so that every container it opens
    counts the frames it decodes; returns the one-element counter."""
    import av

    counter = [0]
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counter))
    return counter
