"""Repaint pacing: while auto-play runs, show the newest step a few times a second, not every step.

A repaint of the main screen (two plots, pictures, a layout) costs tens of milliseconds, more on a
busy machine; steps of a small model come faster than that. Requests in between are merged.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Calls `show` now, or (`soon`) at most once per `interval` seconds, once for all requests."""

    def __init__(self, node, show: Callable[[], None], interval: float) -> None:
        self.node, self.show, self.interval = node, show, interval
        self._timer = None
        self._shown_at = 0.0

    @property
    def waiting(self) -> bool:
        return self._timer is not None

    def request(self, soon: bool = False) -> None:
        if soon:
            if self._timer is None:
                wait = max(0.02, self._shown_at + self.interval - time.monotonic())
                self._timer = self.node.set_timer(wait, self.request)
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._shown_at = time.monotonic()
        self.show()
