"""textual-serve's Server with the guards `stepviz serve` needs (see serve.py): origin, token, session limit,
and a page of stepviz's own that loads nothing from outside."""

from __future__ import annotations

import html
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="static/css/xterm.css">
<script src="static/js/textual.js"></script>
<style>
@font-face {{ font-family: "Roboto Mono"; src: url("static/fonts/RobotoMono-VariableFont_wght.ttf"); }}
body {{ background: #0c181f; color: #eee; font-family: "Roboto Mono", monospace; margin: 0; }}
.note {{ position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; }}
body.-first-byte .starting, .ended, body .textual-terminal {{ display: none; }}
body.-first-byte .textual-terminal {{ display: block; }}
body.-closed .ended {{ display: flex; }}
</style>
</head>
<body>
<div class="note starting">starting {title}...{sharing}</div>
<div class="note ended">Session ended: reload the page to start again.</div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{websocket}" data-font-size="{font_size}">
</div>
</body>
</html>
"""

NOTICE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>stepviz</title></head>
<body style="background:#0c181f;color:#eee;font-family:monospace;padding:3em;font-size:18px">
<h1>{heading}</h1><p>{text}</p></body></html>
"""


def notice_page(status: int, heading: str, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html",
                        text=NOTICE.format(heading=html.escape(heading), text=html.escape(text)))


class GuardedServer(Server):
    def __init__(self, command: str, *, host: str, port: int, title: str, token: str | None, max_sessions: int,
                 loopback: bool, shared: bool = False):
        super().__init__(command, host=host, port=port, title=title)
        self.token, self.max_sessions, self.loopback, self.shared = token, max_sessions, loopback, shared
        self.sessions = 0

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_websocket)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: `stepviz serve` printed its own lines (the URL with its token, the warning)."""

    # ------------------------------------------------------------ the guards
    def refusal(self, request: web.Request, token: str | None) -> web.Response | None:
        """Why this request may not have a session (a page to answer with), or None."""
        host = (urlsplit(f"//{request.host}").hostname or "").lower()
        if self.loopback and host not in ("localhost", "127.0.0.1", "::1"):
            return notice_page(403, "Not this address", f"This stepviz server answers only on this machine "
                               f"(127.0.0.1 or localhost), not at {request.host}.")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{request.host}", f"https://{request.host}"):
            return notice_page(403, "Not from this page", f"Sessions start only from the page this stepviz "
                               f"server serves, not from {origin}.")
        if self.token is not None and not secrets.compare_digest(token or "", self.token):
            return notice_page(403, "Access token needed", "Open the link that `stepviz serve` printed: it ends "
                               "with ?token=... .")
        return None

    def full(self) -> web.Response | None:
        if self.sessions < self.max_sessions:
            return None
        sessions = "session" if self.max_sessions == 1 else "sessions"
        return notice_page(503, "Every session is in use", f"This stepviz server runs at most {self.max_sessions} "
                           f"{sessions} at once ("
                           + ("they share one engine and one model" if self.shared else
                              "each is a process with its own copy of the model, sized to the machine's memory")
                           + "). Close another tab, then reload this page. The teacher can change "
                           "the limit with --max-sessions.")

    async def handle_index(self, request: web.Request) -> web.Response:
        token = request.query.get("token")
        refused = self.refusal(request, token) or self.full()
        if refused is not None:
            return refused
        websocket = f"ws://{request.host}/ws" + (f"/{token}" if self.token else "")
        return web.Response(content_type="text/html", text=PAGE.format(
            title=html.escape(self.title), websocket=html.escape(websocket),
            sharing=f" (one engine shared by {self.sessions + 1} sessions)" if self.shared else "",
            font_size=page_font_size(request.query.get("fontsize", ""))))

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        refused = self.refusal(request, request.match_info.get("token")) or self.full()
        if refused is not None:
            return refused
        self.sessions += 1
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions -= 1


FONT_SIZES = range(8, 65)  # px: a phone's smallest to a projector's largest


def page_font_size(text: str) -> int:
    """The page's font size from ?fontsize=: a whole number of pixels in FONT_SIZES, else the default 16."""
    if text.isascii() and text.isdigit() and len(text) <= 2 and int(text) in FONT_SIZES:
        return int(text)
    return 16
