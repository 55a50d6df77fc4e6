"""The engine process of `stepviz serve --shared`: one model, one SharedEngine, one app per browser tab.

    stepviz tui <run options> --shared-host SOCKET [--solo] [--engine ray|auto|ray://HOST:PORT]
                                                                  (started by `stepviz serve --shared`)

It loads the model once, then listens on a local (Unix) socket in a folder only its user can enter. Each
tab's process (shared_client.py, a relay without torch) connects and sends its terminal size as one JSON
line; the tab gets its own StepvizApp, run in a thread here with a driver on that connection
(socket_driver.py), whose branches are sessions of the shared engine: the tabs' UNet calls are batched.
--solo runs every UNet call alone (max_batch_size=1): bit-exact with `stepviz tui`, still one model.
--engine ray sends the batched calls to a Ray Serve deployment (run/cluster.py) on a local Ray instance,
ray://HOST:PORT (or auto) to a running Ray cluster; the sessions are the same.
"""

from __future__ import annotations

import json
import socket
import sys
import threading

MAX_BATCH_SIZE, MAX_WAIT_MS = 32, 5  # rows per UNet call; how long the first call of a batch waits for others
READY = "stepviz: shared engine ready"


def read_hello(connection: socket.socket) -> tuple[int, int]:
    """The tab's first line: {"columns": .., "rows": ..}; read byte by byte so nothing after it is taken."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 1024:
        byte = connection.recv(1)
        if not byte:
            raise ConnectionError("the tab left before saying its size")
        line += byte
    hello = json.loads(line)
    return int(hello["columns"]), int(hello["rows"])


def run_tab(settings, engine, connection: socket.socket) -> None:
    """One tab's app, until it quits or its tab goes away."""
    from .app import StepvizApp
    from .socket_driver import socket_driver

    with connection:
        try:
            size = read_hello(connection)
        except (ConnectionError, ValueError, KeyError, OSError):
            return
        app = StepvizApp(settings, graphics="halfcell", engine=engine, driver_class=socket_driver(connection, size))
        try:
            app.run()
        except Exception as exc:  # noqa: BLE001 - one tab's failure ends that tab, never the engine
            print(f"stepviz: a tab's app ended with {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def end_with_parent() -> None:
    """Leave when the process that started this one is gone (`stepviz serve` killed without its cleanup)."""
    import os
    import signal
    import time

    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)  # the main thread leaves through its cleanup


def make_engine(settings, solo: bool, engine: str):
    """The shared engine: batches in this process (local), or on a Ray Serve deployment."""
    from ..run.shared_engine import SharedEngine

    pipe, max_batch_size = settings.load_pipeline(), 1 if solo else MAX_BATCH_SIZE
    if engine == "local":
        return SharedEngine(pipe, max_batch_size=max_batch_size, max_wait_ms=MAX_WAIT_MS)
    from ..run.cluster import RayEngine

    load = dict(model=settings.model, dtype=settings.dtype, variant=settings.variant,
                prediction_type=settings.prediction_type)
    return RayEngine(pipe, load=load, address=None if engine == "ray" else engine,
                     max_batch_size=max_batch_size, max_wait_ms=MAX_WAIT_MS)


def host(settings, socket_path: str, solo: bool = False, engine: str = "local") -> int:
    """Load the model, then serve tabs on `socket_path` until killed (SIGTERM: the engine is closed first)."""
    from ..models.loading import quiet_libraries
    from .app import leave_a_core_for_the_ui

    import faulthandler
    import os
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack, on stderr
    leave_a_core_for_the_ui()
    quiet_libraries()
    engine = make_engine(settings, solo, engine)

    def leave(*_) -> None:  # `stepviz serve` ends (or its parent is gone): stop the engine (a Ray deployment too)
        engine.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    threading.Thread(target=end_with_parent, name="stepviz-parent-watch", daemon=True).start()
    print(READY, flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=run_tab, args=(settings, engine, connection), name="stepviz-tab", daemon=True).start()
