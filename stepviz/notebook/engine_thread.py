"""The notebook's engine thread: model work runs here, so the kernel stays free to answer buttons.

A button's callback runs on the kernel's main thread; it only puts a job on this thread's queue
(or sets the cancel flag) and returns at once. Jobs run one at a time, in order. `cancel()` asks the
job in progress to stop at its next check (between two steps), like the TUI's workers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Job = Callable[[Callable[[], bool]], None]  # a job gets `cancelled()` and checks it between steps


class EngineThread:
    def __init__(self, on_failure: Callable[[Exception], None], name: str = "stepviz-notebook-engine"):
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._cancel = threading.Event()
        self._on_failure = on_failure
        self.running = threading.Event()  # set while a job runs
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def cancel(self) -> None:
        """Stop the job in progress at its next check (the jobs waiting after it still run)."""
        if self.running.is_set():
            self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job submitted so far is done (for tests and scripts); False on timeout."""
        done = threading.Event()
        self._jobs.put(lambda cancelled: done.set())
        return done.wait(timeout)

    def close(self) -> None:
        self.cancel()
        self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self._cancel.clear()
                self.running.set()
                job(self._cancel.is_set)
            except Exception as exc:  # shown in the widget's error line; the thread lives on
                self._on_failure(exc)
            finally:
                self.running.clear()
                self._jobs.task_done()
