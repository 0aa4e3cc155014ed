"""The resumable write loop that ``wmkit record`` and ``wmkit data import`` share.

Both fill an :class:`~wmkit.core.data.episode_store.EpisodeWriter` with episodes
``start .. total - 1``, where ``start`` is the number of episodes the store already holds
(what makes a rerun resume), under a tqdm bar that shows a throughput. Stopped with Ctrl-C, the
writer is closed first so the complete episodes stay (the writer commits shards atomically)
and the same command run again carries on after them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wmkit.core.data.episode_store import EpisodeWriter

__all__ = ["write_episodes"]


def write_episodes(
    writer: EpisodeWriter,
    add_episode: Callable[[int], int],
    *,
    start: int,
    total: int,
    initial: int,
    desc: str,
    rate: str,
    progress: bool = True,
) -> None:
    """Call ``add_episode(i)`` for ``i`` in ``start .. total - 1`` and close ``writer``.

    Args:
        writer: the writer ``add_episode`` adds to; closed at the end, and on Ctrl-C before
            the interrupt is raised on (keeping the complete episodes).
        add_episode: adds episode ``i`` to ``writer``; returns how many units (steps,
            frames) it held, for the throughput shown.
        start, total: the episodes to write.
        initial: where the progress bar starts.
        desc: the progress bar's label.
        rate: the throughput's name on the bar (e.g. ``"steps_per_s"``).
        progress: show the tqdm progress bar.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit="ep", desc=desc, disable=not progress)
    done, t0 = 0, time.perf_counter()
    try:
        for i in range(start, total):
            done += add_episode(i)
            bar.update(1)
            bar.set_postfix({rate: f"{done / (time.perf_counter() - t0):.0f}"})
    except KeyboardInterrupt:
        writer.close()  # keep the complete episodes; rerun to resume
        raise
    finally:
        bar.close()
    writer.close()
