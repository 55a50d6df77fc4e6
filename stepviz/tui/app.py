"""The stepviz terminal UI: a thin App around the main screen (see screens/main.py).

Nothing here imports torch: the first frame ("loading the model...") is painted before the engine
worker imports torch and diffusers and loads the model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from textual.app import App
from textual.binding import Binding

from ..run.session import RunSession
from .widgets.picture import picture_class


class WorkerThreads(ThreadPoolExecutor):
    """The threads Textual runs thread workers in. Closing the event loop does not wait for them: a model
    load still running when the user quits must not hold the app open (see leave_without_waiting_for_the_engine)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


class StepvizApp(App):
    """Step through a diffusion run. `pipe=None` loads `settings.model` in a worker."""

    CSS_PATH = "stepviz.tcss"
    TITLE = "stepviz"
    ENABLE_COMMAND_PALETTE = False  # ctrl+p would only clutter the footer; every action has its key
    # q quits from every screen (each dialog binds it to app.quit too; escape closes a dialog)
    BINDINGS = [Binding("q", "quit", "quit", show=False)]
    SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as a shell says

    def __init__(self, settings, pipe=None, graphics: str = "halfcell", engine=None, driver_class=None) -> None:
        """engine: a SharedEngine the run's branches are sessions of (`stepviz serve --shared`)."""
        super().__init__(driver_class=driver_class)
        picture_class(graphics)  # an unknown name is refused here, before any window opens
        self.session = RunSession(settings, pipe, engine)
        self.graphics = graphics

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(WorkerThreads())
        for number, code in self.SIGNAL_EXIT_CODES.items():  # kill -INT / -TERM: leave with the terminal restored
            loop.add_signal_handler(number, self.exit, None, code)
        self.main = self.main_screen()
        self.push_screen(self.main)

    def action_quit(self) -> None:
        """Quit at once from any screen: a step in progress is abandoned (run_app leaves without waiting)."""
        self.workers.cancel_all()
        self.exit()

    def on_engine_jobs_events_due(self, message) -> None:
        """Lesson notes shown in the compare grid belong to the run's notes too (`n` rereads them); the main
        screen's own stop there."""
        for note in message.notes:
            self.main.note(note)

    def main_screen(self):
        """The first screen (the trace view's app opens its own)."""
        from .screens.main import MainScreen

        return MainScreen(self.session, self.graphics)


def leave_a_core_for_the_ui() -> int | None:
    """Let torch use every core but one (unless OMP_NUM_THREADS says otherwise); the count set, or None.

    The UI thread keeps a core to answer keys on, and on a busy machine a step is much faster: torch
    waiting on threads that another process holds made a toy step 30-100x slower on 2 shared cores.
    Before torch is imported this goes through OMP_NUM_THREADS (torch reads it when it starts).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = max(1, (os.cpu_count() or 2) - 1)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


def run_app(settings, graphics: str = "halfcell") -> int:
    """Run the TUI until the user quits; 0 on a normal exit, 2 when the run could not start."""
    leave_a_core_for_the_ui()
    app = StepvizApp(settings, graphics=graphics)
    app.run()
    code = app.return_code or 0
    leave_without_waiting_for_the_engine(app.session, code)
    return code


def engine_threads_running() -> bool:
    """True while a worker thread (a step, a VAE decode, the model loading) is still computing."""
    import threading

    return any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate())


def leave_without_waiting_for_the_engine(session: RunSession, code: int) -> None:
    """Quit now even if a worker thread is still loading the model, taking a step or decoding a preview.

    Python joins worker threads at exit, so `q` pressed while the model loads kept the process alive until
    the load ended (9 s after the key, measured on a busy machine), and during an SD-size step or VAE decode
    for up to a minute. The engine worker holds the session's lock while it works: unless it is writing a file
    (an export, written under a temporary name and renamed: let it finish), the process ends at once (its
    screen is already restored); the step is abandoned.
    """
    if session.lock.acquire(timeout=0.2):
        session.lock.release()
        if not engine_threads_running():
            return
    elif session.writing:
        with session.lock:
            return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
