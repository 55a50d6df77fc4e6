"""Textual's web driver over a socket instead of stdin/stdout, for an app running in a thread of the
engine process (`stepviz serve --shared`, see shared_host.py).

textual-serve speaks to an app process in packets on its stdin and stdout (textual's web_driver.py:
"D" data / "M" meta, a 4-byte length, the payload). The tab's own process (shared_client.py) passes
those bytes through a local socket unchanged; this driver reads and writes them there.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading

from textual import messages
from textual.driver import Driver
from textual.drivers._input_reader_linux import InputReader
from textual.drivers.web_driver import WebDriver


class SocketInputReader(InputReader):
    """Textual's input reader on a connected socket."""

    def __init__(self, connection: socket.socket, timeout: float = 0.1) -> None:  # the parent's reads stdin
        self._fileno = connection.fileno()
        self.timeout = timeout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fileno, selectors.EVENT_READ)
        self._exit_event = threading.Event()


def socket_driver(connection: socket.socket, size: tuple[int, int]) -> type[WebDriver]:
    """A driver class (Textual builds the driver itself) bound to one tab's connection and terminal size."""
    send_lock = threading.Lock()

    def send(data: bytes) -> None:
        with send_lock:
            try:
                connection.sendall(data)
            except OSError:  # the tab went away: its input side ends the app
                pass

    class SocketDriver(WebDriver):
        def __init__(self, app, *, debug: bool = False, mouse: bool = True, **ignored) -> None:
            # WebDriver's own __init__ would watch this process's stdin (not a tab's): set its fields here
            Driver.__init__(self, app, debug=debug, mouse=mouse, size=size)
            self.exit_event = threading.Event()
            self._key_thread = threading.Thread(target=self.run_input_thread, name="textual-input")
            self._input_reader = SocketInputReader(connection)
            self._deliveries = {}
            self._write = send

        def start_application_mode(self) -> None:
            # signal handlers belong to the main thread, which is not this app's: the tab quits by a "quit" packet
            asyncio.get_running_loop().add_signal_handler = lambda *args, **kwargs: None
            super().start_application_mode()

        def run_input_thread(self) -> None:
            super().run_input_thread()
            if not self.exit_event.is_set():  # the tab's process ended without saying goodbye: end its app
                self._app.post_message(messages.ExitApp())

    return SocketDriver
