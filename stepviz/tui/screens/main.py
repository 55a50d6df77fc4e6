"""The main screen: the panels, the workers that run the engine off the UI thread, and what they answer.

What its keys do (what each asks of the engine, or which screen it opens) is main_keys.py's `MainKeys`."""

from __future__ import annotations

import gc
import time
from functools import partial

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from ..jobs import Load
from ..engine_jobs import EngineJobs, JobWorkers
from ..pacer import Pacer
from ...run.session import FORK, MAIN, RunSession, Shown
from ..widgets.blend_panel import BlendPanel
from ..widgets.extra_channels_panel import ExtraChannelsPanel
from ...render.channel_pictures import denoiser_of
from ..widgets.guidance_panel import GuidancePanel
from ..widgets.key_bar import Key, KeyBar
from ..widgets.notes_panel import NotesPanel
from ..widgets.preview_panel import PreviewPanel, default_preview
from ..widgets.prompt_panel import PromptPanel
from ..widgets.schedule_panel import SchedulePanel
from ..widgets.status_line import StatusLine
from ..widgets.timeline import Timeline
from .main_keys import KEY_BINDINGS, MAIN_KEYS, MainKeys

PLAY_REPAINT_EVERY = 0.3  # seconds between two repaints while auto-play runs: the newest step wins


class MainScreen(JobWorkers, Screen):
    """The run's panels, fed by the engine worker's messages; what the keys do is `self.keys`' (main_keys.py)."""

    BINDINGS = KEY_BINDINGS

    def __init__(self, session: RunSession, graphics: str = "halfcell") -> None:
        super().__init__()
        self.session, self.graphics = session, graphics
        self.jobs = EngineJobs(session, self.post_message)
        self.views: dict = {}
        self.index: int | None = None  # the step looked at; None follows the latest, -1 the start
        self.kind = "approx"
        self.playing = False
        self._pictures_index: int | None = None  # the step (record index) whose pictures are on screen
        self._pictures_in_flight: set[str] = set()  # branches whose pictures a worker is drawing
        self._pictures_waiting: set[str] = set()  # branches that took a step meanwhile (while playing)
        self.busy: tuple[str, float] | None = None  # what the engine is doing, since when (monotonic)
        self.pacer = Pacer(self, self.repaint, PLAY_REPAINT_EVERY)
        self._stale: set[str] = set()  # branches changed since the last repaint
        self._main_stale = False  # the main panels missed a change while another screen was on top
        self.keys = MainKeys(self)

    def compose(self) -> ComposeResult:
        yield StatusLine("loading the model...", id="status")
        with Horizontal(id="top"):
            yield PreviewPanel(self.graphics, id="previews")
            yield GuidancePanel(id="guidance")
        with Horizontal(id="middle"):
            yield SchedulePanel(id="schedule")
            with Vertical(id="side"):
                yield BlendPanel(self.graphics, id="blend")
                yield ExtraChannelsPanel(self.graphics, id="extra-channels")
                yield PromptPanel("prompt anatomy: loading...", id="prompt")
        yield Timeline(id="timeline")
        yield NotesPanel(id="notes")
        yield KeyBar(self.key_bar_keys(), id="keys")

    def key_bar_keys(self) -> list[Key]:
        keys = [Key(*row) for row in MAIN_KEYS if row[0] != "c" or self.session.settings.compare]
        if self.playing:
            keys[1] = Key("p", "pause", "pause")
        return keys

    def action_key(self, name: str) -> None:
        """Every key's binding: the MainKeys method that does what the key says (main_keys.KEYS)."""
        getattr(self.keys, name)()

    def on_mount(self) -> None:
        settings = self.session.settings
        notes = self.query_one(NotesPanel)
        intro = "\n\n".join(text.strip() for text in (settings.title, settings.description) if text)
        notes.note((intro + "\n\n" if intro else "") + "space: one step · p: play · left/right: look back · "
                   "n: every note so far · ?: help with every formula", step=0, keys_hint=True)
        self.set_interval(0.25, self.show_busy)
        self.run_engine(Load())

    def on_resize(self) -> None:
        self.set_class(self.size.height < 32, "-compact")
        self.size_top()

    def size_top(self) -> None:
        """The previews' row as tall as its square pictures need at this width (no empty rows under them at
        160x50), at most 45% of the screen (34% at 80x24); the schedule, blend and prompt panels get the rest."""
        view = self.views.get(MAIN)
        pictures = 2 + (len(view.inputs) if view is not None else 0)
        width = self.size.width // 2 - 2  # the previews' half of the row, inside its border
        rows = (width // pictures - 1) // 2 + 1 + 2  # a square picture (a cell is 1:2), its caption, the border
        share = 0.34 if self.size.height < 32 else 0.45  # at 80x24 the note and the plots need their rows too
        self.query_one("#top").styles.height = max(7, min(rows, int(share * self.size.height)))

    def on_screen_resume(self) -> None:
        if self._main_stale:  # what changed while help, a dialog or the comparison was on top
            self.show_main()

    def on_unmount(self) -> None:
        gc.unfreeze()  # see on_engine_jobs_run_changed

    # ------------------------------------------------------------ workers (threads; they only post messages;
    # run_engine and run_edit come from JobWorkers)
    def draw_pictures(self, branch: str, shown: Shown) -> None:
        """Pictures of the step looked at, in the current kind (one worker per branch; a newer request wins)."""
        if self.playing and branch in self._pictures_in_flight:  # while playing a newer request would cancel
            self._pictures_waiting.add(branch)  # this one before it ends, every time: draw the latest after it
            return
        self._pictures_in_flight.add(branch)
        record = shown.record
        index = None if record is None else record.index
        job = partial(self.jobs.pictures, branch, record, index, self.kind, shown.view.initial_latents,
                      shown.view.extra_channels)
        if branch == MAIN and self.query_one(PreviewPanel).wanted != self.kind:
            self.query_one(PreviewPanel).drawing(self.kind)
        self.run_worker(lambda: job(cancelled=lambda: get_current_worker().is_cancelled), thread=True,
                        exclusive=True, group=f"pictures-{branch}", exit_on_error=False)

    def set_playing(self, playing: bool) -> None:
        """Auto-play on or off: the status line says so, and the key bar offers the other."""
        self.playing = playing
        self.query_one(StatusLine).playing = playing
        self.query_one(KeyBar).set_keys(self.key_bar_keys())

    def show_busy(self) -> None:
        """Every quarter second: how long what the engine does has taken, once it takes more than half a second."""
        busy = self.busy
        seconds = 0.0 if busy is None else time.monotonic() - busy[1]
        self.query_one(StatusLine).busy = None if busy is None or seconds < 0.5 else f"{busy[0]}... {seconds:.0f} s"

    # ------------------------------------------------------------ messages from the workers
    def on_engine_jobs_run_changed(self, message: EngineJobs.RunChanged) -> None:
        view = message.view
        self.views[view.branch] = view
        if message.notice:
            self.tell(message.notice, "Scheduler")
        if message.reason in ("scheduler", "guidance"):
            self.tell(f"{message.reason} set, from step {view.steps_taken + 1} on: "
                      f"{view.scheduler if message.reason == 'scheduler' else view.guidance_scale}", "Edit")
        if view.branch == MAIN:
            if message.reason in ("rewind", "loaded"):
                self.index = None
            if message.reason == "loaded":
                self.size_top()
                gc.freeze()  # torch, diffusers, the model: a full collection over them froze the UI ~0.5 s
                for notice in view.notices:  # e.g. a uniform depth map used flat
                    self.tell(notice, "Notice")
                self.kind = default_preview(self.session.pipe)
                self.on_engine_jobs_busy(EngineJobs.Busy(None))
            if message.reason == "rewind":
                self.tell(f"rewound to step {view.steps_taken}: later steps dropped", "Rewind")
        self._stale.add(view.branch)
        if message.reason == "fork" and view.branch == FORK:
            self.keys.open_compare([MAIN, FORK])
        self.pacer.request(soon=self.playing and message.reason == "step")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Space or p pressed while the model loaded: taken once the load (and a lesson's step-0 events) is done."""
        if event.worker.group == "engine" and event.worker.is_finished:
            self.keys.start_queued()

    def on_engine_jobs_failed(self, message: EngineJobs.Failed) -> None:
        self.on_engine_jobs_busy(EngineJobs.Busy(None))
        self.query_one(NotesPanel).log(f"{message.title}: {message.text}")
        if not self.views:  # the run never started: nothing to look at, so say why and offer the way out
            from .start_failed import StartFailed

            self.app.push_screen(StartFailed(message.title, message.text))
            return
        self.notify(message.text, title=message.title, severity="error", timeout=8)
        if message.view is not None:
            self.on_engine_jobs_run_changed(EngineJobs.RunChanged(message.view, "failed"))

    def on_engine_jobs_events_due(self, message: EngineJobs.EventsDue) -> None:
        message.stop()  # the run's own notes: the app passes on only the compare grid's (StepvizApp)
        notes = list(message.notes)
        if message.pause:
            self.set_playing(False)
            notes = notes or ["Paused by the lesson."]
            notes[-1] += "\n(paused by the lesson: space or p goes on)"
        for note in notes:
            self.query_one(NotesPanel).note(note, step=len(message.view.records))
        self.on_engine_jobs_run_changed(EngineJobs.RunChanged(message.view, "event"))
        if message.hold is not None:
            self.keys.hold_then_play(message.hold)

    def on_engine_jobs_busy(self, message: EngineJobs.Busy) -> None:
        self.busy = None if message.text is None else (message.text, time.monotonic())
        if message.text is None or message.text.startswith("loading"):  # shown at once; a step after 0.5 s
            self.query_one(StatusLine).busy = message.text and message.text + "..."

    def on_engine_jobs_branches_ready(self, message: EngineJobs.BranchesReady) -> None:
        self.keys.open_compare([MAIN, *message.names], catch_up=True)

    def on_engine_jobs_play_stopped(self, message: EngineJobs.PlayStopped) -> None:
        self.set_playing(False)
        if self.pacer.waiting:
            self.pacer.request()

    def on_engine_jobs_pictures_ready(self, message: EngineJobs.PicturesReady) -> None:
        self._pictures_in_flight.discard(message.branch)
        if message.branch in self._pictures_waiting:
            self._pictures_waiting.discard(message.branch)
            if message.branch == MAIN and self.shown() is not None:
                self.draw_pictures(MAIN, self.shown())
        if message.branch != MAIN or message.kind != self.kind:
            return
        shown = self.shown()
        record = shown.record if shown else None
        wanted = None if record is None else record.index
        # while the latest step is followed (playing), the newest pictures to arrive are drawn even when a later
        # step has been taken meanwhile, captioned with their own step: pictures and caption never disagree
        newer = self.index is None and message.index is not None and (
            self._pictures_index is None or message.index > self._pictures_index)
        if wanted != message.index and not newer:
            return
        self._pictures_index = message.index
        step = 0 if message.index is None else message.index + 1
        self.query_one(PreviewPanel).show(message.pictures, message.kind, step, shown.view.mode,
                                          shown.view.strength, shown.view.inputs)
        self.query_one(BlendPanel).show(message.pictures)
        self.query_one(ExtraChannelsPanel).show(message.pictures)

    def on_engine_jobs_exported(self, message: EngineJobs.Exported) -> None:
        self.tell(f"wrote {message.path}", "Exported")

    def on_timeline_selected(self, message: Timeline.Selected) -> None:
        self.index = message.index
        self.show_main()

    # ------------------------------------------------------------ showing
    def shown(self) -> Shown | None:
        view = self.views.get(MAIN)
        return None if view is None else Shown(view, self.index)

    def repaint(self) -> None:
        """Show the branches that changed (paced by `self.pacer` while auto-play runs)."""
        stale, self._stale = self._stale, set()
        if MAIN in stale:
            self.show_main()

    def show_main(self) -> None:
        """Show the step looked at in the panels (later, when another screen is on top)."""
        shown = self.shown()
        if shown is None:
            return
        self._main_stale = self.app.screen is not self
        if self._main_stale:  # help, a dialog or the comparison is on top: catch up on resume
            return
        for panel in (StatusLine, GuidancePanel, SchedulePanel, PromptPanel, Timeline):
            self.query_one(panel).shown = shown
        taken = len(shown.view.records)
        self.query_one(NotesPanel).show_for_step(taken if shown.index is None else min(shown.index + 1, taken))
        self.query_one(BlendPanel).display = shown.view.mode == "inpaint" and shown.view.records != () and \
            not shown.view.extra_channels
        self.query_one(ExtraChannelsPanel).set_channels(shown.view.extra_channels,
                                                        denoiser_of(shown.view.model_family))
        self.draw_pictures(MAIN, shown)

    def note(self, text: str) -> None:
        """A lesson note: shown whole in the notes panel until the next one."""
        self.query_one(NotesPanel).note(text)

    def tell(self, text: str, title: str) -> None:
        """What the app did: a notification, and a line in the notes history (`n`), never over a note."""
        self.notify(text, title=title)
        self.query_one(NotesPanel).log(text)
