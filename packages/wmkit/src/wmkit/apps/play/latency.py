"""How long after an action its frame is on screen: the latency of a world model in play.

A per-frame world model answers an action with the frame that follows it, so play's latency
is the step time. A world model whose latent step spans ``k`` frames
(:mod:`wmkit.core.latent_steps`) buffers actions until a latent step's ``k`` are in and serves
one frame per call, ``StepOutput.lag`` actions behind (``k - 1`` once running): the frame
that follows an action comes ``lag`` calls later, one frame period apart. So

    latency = lag × frame period + step time

with the frame period the play loop's (``1 / fps`` as measured, or the target's while
nothing is measured yet) and the step time the mean over recent calls (the call that
generates a latent step is slower than those that serve a buffered frame: the mean spreads
its cost over the frames it makes). The PNG encoding and the network are left out: they are
the same for every world model.
"""

from __future__ import annotations

from collections import deque

__all__ = ["StepTimes", "play_latency"]


def play_latency(lag: int, frame_period: float, step_seconds: float) -> float:
    """Seconds from an action to its frame: ``lag`` frame periods of ``frame_period`` seconds
    plus the step time ``step_seconds`` (see the module docstring)."""
    if lag < 0 or frame_period < 0 or step_seconds < 0:
        raise ValueError(
            f"lag, frame_period and step_seconds must be >= 0; got {lag}, {frame_period}, "
            f"{step_seconds}"
        )
    return lag * frame_period + step_seconds


class StepTimes:
    """The last ``window`` world-model step times and the lag of the last step.

    Args:
        window: how many recent steps the mean step time covers (a multiple of the frames
            per latent step, 1, 2, 4, 8 or 16, holds as many generating calls whenever the
            window is full, so the mean does not wobble from one frame to the next).
    """

    def __init__(self, window: int = 32) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1; got {window}")
        self.seconds: deque[float] = deque(maxlen=window)
        self.lag = 0

    def record(self, seconds: float, lag: int) -> None:
        """One step took ``seconds`` and served its frame ``lag`` actions behind."""
        self.seconds.append(seconds)
        self.lag = lag

    def clear(self) -> None:
        """Forget the steps (a new context or a switch of source)."""
        self.seconds.clear()
        self.lag = 0

    @property
    def mean(self) -> float:
        """Mean step time in seconds (0 before the first step)."""
        return sum(self.seconds) / len(self.seconds) if self.seconds else 0.0

    def latency(self, frame_period: float) -> float:
        """:func:`play_latency` of the last lag and the mean step time."""
        return play_latency(self.lag, frame_period, self.mean)
