"""`stepviz serve`: the same TUI in a web browser through textual-serve (for projecting in class).

textual-serve starts one app process per browser tab, running `python -m stepviz tui <run options>`
with the options this command was given (minus the serve-only ones). On top of textual-serve:
  - the websocket that drives a session accepts only the page this server served: a browser's Origin must
    be this server, and on loopback the Host must be a loopback name (a page on another site, or one that
    rebinds its DNS name to 127.0.0.1, cannot start sessions or send keys);
  - bound beyond loopback, every page and session needs a random access token, printed in the URL (as
    notebook servers do), unless --no-token; and a warning line says who can reach it;
  - at most --max-sessions sessions at once (default: what the machine's free memory holds, each session
    being a process with its own model); past that a page says so;
  - the page is stepviz's own and loads nothing from outside (a classroom may have no internet): the
    terminal's script, style and font come from textual-serve's bundled files.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

from ..engine.checks import StepvizInputError

SERVE_ONLY = ("--host", "--port", "--max-sessions", "--engine")
SERVE_FLAGS = ("--no-token", "--shared")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SESSION_OVERHEAD = 450 * 2**20  # one `stepviz tui` process on the toy model: python, torch, textual (measured 485 MiB)
SHARED_SESSION_BYTES = 60 * 2**20  # --shared: one tab's app in the engine process and its relay process (a
#                                    rounded-up figure from bench/p10_shared_engine.py's memory table)


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
        if arg in SERVE_FLAGS or arg.startswith(tuple(f"{name}=" for name in SERVE_ONLY)):
            continue
        kept.append(arg)
    # halfcell: the browser terminal draws it; sixel/tgp would not get through
    return shlex.join([sys.executable, "-m", "stepviz", "tui", *kept, "--graphics", "halfcell"])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int) -> None:
    """The port is a real one and free on `host`, or one line saying why not (before anything starts)."""
    if not 1 <= port <= 65535:
        raise StepvizInputError(f"--port {port} is not allowed: give a port in 1..65535 (e.g. 8000)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepvizInputError(f"--host {host!r} is not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise StepvizInputError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}): another "
                                    "program may be using it; pick another port") from None


def session_bytes(settings) -> int:
    """About what one session (a process with its own copy of the model) holds."""
    from ..models.loading import model_facts

    facts = model_facts(settings.model)
    weights = sum(p.stat().st_size for p in facts.folder.rglob("*.safetensors")) if facts else 0
    return SESSION_OVERHEAD + 2 * weights  # the weights as loaded, and their copy while loading


def default_max_sessions(settings, shared: bool = False) -> int:
    from ..engine.memory import available_bytes

    return max(1, min(64, available_bytes() // (SHARED_SESSION_BYTES if shared else session_bytes(settings))))


def start_engine_process(argv: list[str], socket_path: str, solo: bool, engine: str = "local") -> subprocess.Popen:
    """`stepviz serve --shared`'s engine process, once it has loaded the model and listens on `socket_path`."""
    from .shared_host import READY

    command = [*shlex.split(tui_command(argv)), "--shared-host", socket_path, "--engine", engine]
    command += ["--solo"] if solo else []
    # what textual-serve tells an app process about the browser's terminal, told once to the engine's apps
    env = dict(os.environ, TEXTUAL_COLOR_SYSTEM="truecolor", TEXTUAL_FPS="60", TERM_PROGRAM="textual")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    while line and READY not in line:
        print(line, end="", flush=True)
        line = process.stdout.readline()
    if READY not in line:
        code = process.wait()
        raise StepvizInputError(f"the shared engine did not start (exit code {code}; its error is above)")
    return process


def check_engine(engine: str, shared: bool) -> None:
    """--engine: local, ray, auto or ray://HOST:PORT, only with --shared; ray's need the cluster extra."""
    if engine == "local":
        return
    if not shared:
        raise StepvizInputError(f"--engine {engine} is allowed only with --shared (it says where the shared "
                                "engine's batched UNet calls run)")
    if engine not in ("ray", "auto") and not engine.startswith("ray://"):
        raise StepvizInputError(f"--engine {engine!r} is not allowed: use local, ray (a local Ray instance), "
                                "auto (a running one on this machine) or ray://HOST:PORT (a cluster's head)")
    from ..run.cluster import import_ray

    import_ray()


def serve(settings, args, argv: list[str]) -> int:
    """Serve the app on args.host:args.port until interrupted."""
    from ..models.loading import model_facts

    model_facts(settings.model, tensors=True)  # what every tab will load, checked once before any tab opens
    check_listen(args.host, args.port)
    if args.max_sessions is not None and args.max_sessions < 1:
        raise StepvizInputError(f"--max-sessions {args.max_sessions} is not allowed: it must be an integer >= 1")
    if args.solo and not args.shared:
        raise StepvizInputError("--solo is allowed only with --shared (without it every tab is a process of its own)")
    check_engine(args.engine, args.shared)
    loopback = is_loopback(args.host)
    token = None if loopback or args.no_token else secrets.token_urlsafe(16)
    limit = args.max_sessions or default_max_sessions(settings, args.shared)
    if not args.shared:
        return serve_pages(args, settings, tui_command(argv), token, limit, loopback)
    folder = tempfile.mkdtemp(prefix="stepviz-engine-")  # mode 0700: only this user reaches the socket
    socket_path = os.path.join(folder, "engine.sock")
    engine = start_engine_process(argv, socket_path, args.solo, args.engine)
    try:
        client = shlex.join([sys.executable, "-m", "stepviz.tui.shared_client", socket_path])
        return serve_pages(args, settings, client, token, limit, loopback, shared=True)
    finally:
        engine.terminate()
        engine.wait(10)
        shutil.rmtree(folder, ignore_errors=True)  # the folder and socket this command made


def serve_pages(args, settings, command: str, token: str | None, limit: int, loopback: bool,
                shared: bool = False) -> int:
    from .serve_guard import GuardedServer

    server = GuardedServer(command, host=args.host, port=args.port, title=settings.title or "stepviz",
                           token=token, max_sessions=limit, loopback=loopback, shared=shared)
    shown_host = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{args.port}/" + (f"?token={token}" if token else "")
    if not loopback:
        print(f"stepviz: warning: serving on {args.host}, beyond this machine: anyone who can reach it "
              + ("and has the link can start sessions and send keys" if token else
                 "can start sessions and send keys (--no-token: no access token)"), file=sys.stderr)
    engine = "one shared engine, " if shared else ""
    print(f"stepviz: serving on {url}  ({engine}sessions at once: at most {limit}; Ctrl+C to stop)", flush=True)
    if args.host in ("0.0.0.0", "::"):  # a student's laptop may not resolve this machine's name: the addresses too
        for address in machine_addresses(ipv6=args.host == "::"):
            shown = f"[{address}]" if ":" in address else address
            print(f"stepviz:   or http://{shown}:{args.port}/" + (f"?token={token}" if token else ""), flush=True)
    server.serve()
    return 0


def machine_addresses(ipv6: bool = False) -> list[str]:
    """This machine's own addresses a browser on the LAN could use (not loopback), as its name resolves them
    and as its network interfaces hold them (Linux); none found: an empty list."""
    import ipaddress

    found: set[str] = set()
    families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    for family in families:
        try:
            found.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, family))
        except OSError:
            pass
    found.update(_interface_addresses())
    usable = [a for a in found if not ipaddress.ip_address(a.split("%")[0]).is_loopback
              and (ipv6 or ":" not in a)]
    return sorted(usable, key=lambda a: (":" in a, ipaddress.ip_address(a.split("%")[0])))


def _interface_addresses() -> set[str]:
    """IPv4 addresses of the network interfaces (Linux's SIOCGIFADDR); elsewhere none."""
    import struct

    found = set()
    try:
        import fcntl

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):  # not Linux, or no interfaces to list
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:  # an interface without an IPv4 address
                continue
            found.add(socket.inet_ntoa(packed[20:24]))
    return found
