"""`stepviz serve`: the same TUI in a web browser through textual-serve (for projecting in class).

textual-serve starts one app process per browser tab, running `python -m stepviz tui <run options>`
with the options this command was given (minus --host/--port), and binds to 127.0.0.1 unless told.
"""

from __future__ import annotations

import shlex
import sys

SERVE_ONLY = ("--host", "--port")


def tui_command(argv: list[str]) -> str:
    """The `stepviz tui` command line for the run options in a `stepviz serve ...` argument list."""
    args = list(argv)
    if args and args[0] == "serve":
        args = args[1:]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in SERVE_ONLY:
            skip = True
            continue
        if arg.startswith(tuple(f"{name}=" for name in SERVE_ONLY)):
            continue
        kept.append(arg)
    # halfcell: the browser terminal draws it; sixel/tgp would not get through
    return shlex.join([sys.executable, "-m", "stepviz", "tui", *kept, "--graphics", "halfcell"])


def serve(settings, args, argv: list[str]) -> int:
    """Serve the app on args.host:args.port until interrupted."""
    from textual_serve.server import Server

    command = tui_command(argv)
    title = settings.title or "stepviz"
    Server(command, host=args.host, port=args.port, title=title).serve()
    return 0
