"""A browser tab's process under `stepviz serve --shared`: a relay, nothing more.

    python -m stepviz.tui.shared_client SOCKET

textual-serve starts one process per tab and speaks to it on stdin/stdout. This one imports the
standard library only (no torch, no weights, not even Textual): it connects to the engine process's
local socket, says the terminal's size, then passes bytes both ways unchanged. The tab's app runs in
the engine process (shared_host.py), where one SharedEngine batches every tab's UNet calls.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading


def relay_stdin(connection: socket.socket) -> None:
    """stdin -> socket until stdin ends (the tab closed); then the engine side hears the end too."""
    try:
        while data := os.read(0, 65536):
            connection.sendall(data)
    except OSError:
        pass
    try:
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stepviz.tui.shared_client SOCKET", file=sys.stderr)
        return 2
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(args[0])
    except OSError as exc:
        print(f"stepviz: error: the shared engine at {args[0]} does not answer ({exc.strerror})", file=sys.stderr)
        return 2
    size = {"columns": int(os.environ.get("COLUMNS", 80)), "rows": int(os.environ.get("ROWS", 24))}
    connection.sendall(json.dumps(size).encode() + b"\n")
    threading.Thread(target=relay_stdin, args=(connection,), daemon=True).start()
    try:
        while data := connection.recv(65536):  # socket -> stdout until the engine ends this tab's app
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
