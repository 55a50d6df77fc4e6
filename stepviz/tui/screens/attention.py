"""`a`: what each word of the prompt attends to, at the step looked at (the main screen's step).

The selected token's cross-attention map lies over x0-hat (or x_t), with the share of its mass on the
foreground; `z` shows every token's map at once. Steps taken from here show up here; left/right look back.
The screen sees the run only through a `RunWindow`: what is looked at, and the two things it may ask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from ...run.session import Shown
from ..widgets.attention_panel import GRID_TOKENS, AttentionGrid, AttentionPanel
from ..widgets.key_bar import Key, KeyBar
from ..widgets.status_line import StatusLine

POLL_SECONDS = 0.25  # how often the screen looks for a new step or another step looked at
KEYS = [Key("↑↓", "token", "token"), Key("←→", "look back", "look"), Key("space", "step", "step"),
        Key("u", "x0-hat/x_t", "x0/xt"), Key("z", "all tokens", "all"), Key("esc", "back", "back"),
        Key("?", "help", "help"), Key("q", "quit", "quit")]  # every one stays at 80 columns (the key bar)


@dataclass(frozen=True)
class RunWindow:
    """What a screen over the run may see and ask: the step looked at (None before the first view), a step
    (as space does on the main screen), looking `delta` steps back or on, and the pipeline that decodes."""

    shown: Callable[[], Shown | None]
    step: Callable[[], None]
    look: Callable[[int], None]
    pipe: Any
    note: Callable[[], str] = str  # the lesson's note in force on the run's screen ("" when none)


def attention_frame(pipe, record, under: str, selected: int, grid: bool, decoded: dict) -> dict:
    """The pictures and numbers for one record (in a worker: decodes with the VAE).

    `decoded` caches the decodes and shares of the last record: picking another token costs no decode.
    """
    from ...render.attention_pictures import foreground_shares, overlay
    from ...engine.noise_scale import to_vp_scale
    from ...render.preview import decode_images

    key = (id(record), under)
    if decoded.get("key") != key:
        x0 = decode_images(pipe, record.pred_original_sample)[0]
        picture = x0 if under == "x0" else decode_images(
            pipe, to_vp_scale(record.latents, record.family, record.sigma_next))[0]
        cells, shares = foreground_shares(x0, record.cross_attention)
        decoded.clear()
        decoded.update(key=key, record=record, picture=picture, area=float(cells.mean()), shares=shares,
                       maps=record.cross_attention.float().cpu().numpy())
    maps, picture = decoded["maps"], decoded["picture"]
    frame = dict(decoded, selected=selected, under=under, overlay=overlay(picture, maps[selected]))
    if grid:
        frame["grid"] = [overlay(picture, m) for m in maps[:GRID_TOKENS]]
    return frame


class AttentionScreen(Screen):
    BINDINGS = [
        Binding("up", "token(-1)", "token", priority=True, key_display="↑↓"),
        Binding("down", "token(1)", "next token", priority=True, show=False),
        *[Binding(str(n), f"pick({n - 1})", f"token {n}", priority=True, show=False) for n in range(1, 10)],
        Binding("left", "look(-1)", "look back", priority=True, key_display="←→"),
        Binding("right", "look(1)", "later", priority=True, show=False),
        Binding("space", "step", "step", priority=True),
        Binding("u", "under", "x0-hat/x_t", priority=True),
        Binding("z", "zoom", "all tokens", priority=True),
        Binding("escape,a", "close", "back", priority=True),
        Binding("question_mark", "help", "help", priority=True, key_display="?"),
        Binding("q", "quit", "quit", priority=True),
    ]
    DEFAULT_CSS = """
    AttentionScreen #attention-grid { display: none; }
    AttentionScreen.-zoom #attention-grid { display: block; }
    AttentionScreen.-zoom #attention-panel { display: none; }
    AttentionScreen #attention-note { height: auto; max-height: 5; padding: 0 1; background: $boost; }
    """

    def __init__(self, run: RunWindow, graphics: str = "halfcell") -> None:
        super().__init__()
        self.run, self.graphics = run, graphics
        self.selected, self.under, self.zoom = 1, "x0", False  # token 1: the first word after <start>
        self._looked_at: tuple | None = None  # (view, index) last drawn
        self._decoded: dict = {}
        self._note: str | None = None  # the lesson note shown below the maps

    def compose(self) -> ComposeResult:
        yield StatusLine("", id="attention-status")
        yield AttentionPanel(self.graphics, id="attention-panel")
        yield AttentionGrid(self.graphics, id="attention-grid")
        yield Static("", id="attention-note", markup=False)  # the lesson's note, as on the run's screen
        yield KeyBar(KEYS, id="attention-keys")

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self.poll)
        self.poll()
        self.draw()

    def poll(self) -> None:
        """Redraw when the run has a new view (compared by identity: views hold tensors) or another step is
        looked at."""
        shown = self.run.shown()
        view, index = self._looked_at or (None, None)
        if shown is not None and (shown.view is not view or shown.index != index):
            self.draw()
        note = self.run.note()
        if note != self._note:
            self._note = note
            shown_note = self.query_one("#attention-note", Static)
            shown_note.update(note)
            shown_note.display = bool(note)

    # ------------------------------------------------------------ drawing
    def labels(self, view) -> list[str]:
        from ...render.attention_pictures import token_labels

        return token_labels(view.prompt_anatomy.tokens)

    def draw(self) -> None:
        shown = self.run.shown()
        if shown is None:
            return
        self._looked_at = (shown.view, shown.index)
        self.query_one(StatusLine).shown = shown
        record = shown.record
        panel = self.query_one(AttentionPanel)
        if record is None:
            panel.message("take a step (space): the maps come from the UNet's cross-attention at each step")
            return
        if record.cross_attention is None:
            panel.message("this run records no attention maps (Stepper(capture_attention=False))")
            return
        self.selected = min(self.selected, len(self.labels(shown.view)) - 1)
        pipe, under, selected, zoom = self.run.pipe, self.under, self.selected, self.zoom

        def job() -> None:
            try:
                frame = attention_frame(pipe, record, under, selected, zoom, self._decoded)
            except Exception as exc:  # shown in the panel; the app stays alive
                self.app.call_from_thread(panel.message, f"could not draw the maps: {type(exc).__name__}: {exc}")
                return
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self.show_frame, shown.view, frame)

        self.run_worker(job, thread=True, exclusive=True, group="attention", exit_on_error=False)

    def show_frame(self, view, frame: dict) -> None:
        labels = self.labels(view)
        selected = frame["selected"]
        if self.zoom and "grid" in frame:
            self.query_one(AttentionGrid).show(labels, frame["grid"], frame["shares"], frame["area"], selected)
        self.query_one(AttentionPanel).show(labels, selected, frame["overlay"], frame["under"],
                                            frame["shares"][selected], frame["shares"], frame["area"])

    # ------------------------------------------------------------ keys
    def action_token(self, delta: int) -> None:
        shown = self.run.shown()
        if shown is not None:
            self.action_pick((self.selected + delta) % len(shown.view.prompt_anatomy.tokens))

    def action_pick(self, index: int) -> None:
        shown = self.run.shown()
        if shown is not None and index < len(shown.view.prompt_anatomy.tokens):
            self.selected = index
            self.draw()

    def action_look(self, delta: int) -> None:
        self.run.look(delta)
        self.draw()

    def action_step(self) -> None:
        self.run.step()

    def action_under(self) -> None:
        self.under = "x_t" if self.under == "x0" else "x0"
        self.draw()

    def action_zoom(self) -> None:
        self.zoom = not self.zoom
        self.set_class(self.zoom, "-zoom")
        self.draw()

    def action_close(self) -> None:
        self.dismiss()

    def action_help(self) -> None:
        from .help import open_help

        shown = self.run.shown()
        open_help(self.app, None if shown is None else shown.view.prediction_type)

    def action_quit(self) -> None:
        """Quit at once, as on the main screen (a step in progress is abandoned: run_app does not wait)."""
        self.workers.cancel_node(self)
        self.app.exit()
