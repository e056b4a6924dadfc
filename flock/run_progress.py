"""The progress bar of one large step in ``flocksim run`` (issue 14, pathological clumping).

``flock.neighbors.progress.report_progress(StepProgressBar(sim))`` around the stepping loop
cuts every neighbor pass of at least ``LARGE_PASS_PAIRS`` candidate pairs into chunks of
about ``CHUNK_SECONDS`` and draws, under the run's own tqdm bar of steps (same stream, same
``--quiet``), one bar per such pass:

    step 1: 1.0e+10 neighbor pairs  37%|███▋      | [00:10<00:17]

A Ctrl-C then lands between two chunks (see ``flock.neighbors.progress``): the step is
abandoned and the run ends as an interrupt between steps does.
"""

from __future__ import annotations

import sys
from typing import TextIO


class StepProgressBar:
    """``callback(done_pairs, total_pairs)`` for ``report_progress``: a tqdm bar per large pass.

    Args:
        sim: the ``Simulation`` being stepped (the bar names step ``sim.step_count + 1``).
        disable: draw nothing (``--quiet``); the passes are still chunked, so Ctrl-C stays prompt.
        file: the stream of the bar (the run's step bar writes to stderr too).
    """

    def __init__(self, sim, *, disable: bool = False, file: TextIO | None = None):
        self.sim = sim
        self.disable = disable
        self.file = sys.stderr if file is None else file
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.disable:
            return
        if self._bar is None or done == 0:
            self.close()
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"step {self.sim.step_count + 1}: {total:.1e} neighbor pairs",
                             bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
                             position=1, leave=False, file=self.file, mininterval=0.2)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Take the bar off the screen (a pass left unfinished by a Ctrl-C, or the end of the run)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["StepProgressBar"]
