"""What the notebook widget shows of the run, drawn on the engine thread; the matplotlib plots on a thread
of their own, newest request first, so a step's pictures do not wait for them.

The pictures and plots come from `stepviz.render` (step pictures, strips, attention pictures, plots): the same
code as the TUI and the export.
"""

from __future__ import annotations

import io
import time

from ..run.session import FORK, MAIN, Shown
from .engine_thread import EngineThread

PLAY_PLOT_EVERY = 2.0  # seconds between two plot requests while playing (matplotlib takes the GIL from the step)


class Drawing:
    def __init__(self, session, panels, on_failure):
        self.session, self.panels = session, panels
        self.plotter = EngineThread(on_failure, name="stepviz-notebook-plots")
        self.syncing = False  # True while controls are set from here (their observers then do nothing)
        self._plot_wanted: tuple | None = None  # (Shown, the fork's records or None): taken on the engine thread
        self._plot_asked = 0.0  # when the plots were last asked for (time.monotonic)
        self._plotted: Shown | None = None  # what the plots show (the run and the fork's records)
        self._plotted_fork: tuple = ()
        self._extra_cache: tuple = (None, None)  # (kind, picture): the extra channels are fixed for a run
        self.attention_cache: tuple = (None,)  # (record, decoded x0-hat, shares, foreground area, maps)

    def show(self, view, index: int | None, kind: str, final: bool = True) -> None:
        """Show the step looked at (`index` as Shown's). `final=False` (while playing): new plots only every
        PLAY_PLOT_EVERY s, when the plot thread is free."""
        from ..render.step_pictures import step_pictures

        shown = Shown(view, index)
        pipe = self.session.pipe
        self._sync_controls(view, index)
        self.panels.show_status(shown)
        self.panels.show_numbers(shown)
        pictures = step_pictures(pipe, shown.record, kind, view.initial_latents)
        self.panels.show_pictures(pictures, self._extra_picture(view, kind))
        self._show_attention(shown, pictures.get("x0") if kind == "full" else None)
        fork = self.session.view(FORK) if self.session.has(FORK) else None
        plot_free = self._plot_wanted is None and not self.plotter.running.is_set()
        if final or (plot_free and time.monotonic() - self._plot_asked > PLAY_PLOT_EVERY):
            self._plot_wanted = (shown, None if fork is None else {"fork": fork.records})
            self._plot_asked = time.monotonic()
            self.plotter.submit(lambda cancelled: self._plot())
        if fork is not None:
            for branch in (MAIN, FORK):
                latest = Shown(self.session.view(branch))
                self.panels.show_compare(branch, latest, step_pictures(pipe, latest.record, kind))
        taken = len(view.records) if index is None else index + 1
        for branch in lesson_runs(self.session):  # at the step the main run shows (or their last, when shorter)
            other = self.session.view(branch)
            at = Shown(other, min(taken, len(other.records)) - 1)
            self.panels.show_lesson_run(branch, self.session.label(branch), at,
                                        step_pictures(pipe, at.record, kind, other.initial_latents))

    def _plot(self) -> None:
        """The plots of the newest view asked for (plot thread; older requests are skipped)."""
        from ..render import plots

        wanted, self._plot_wanted = self._plot_wanted, None  # the requests queued behind this one find None
        if wanted is None:
            return
        shown, branches = wanted
        fork = tuple(map(id, branches["fork"])) if branches else ()
        if shown.draws_like(self._plotted) and fork == self._plotted_fork:
            return  # e.g. another preview kind: the plots stay as they are
        self._plotted, self._plotted_fork = shown, fork
        records = shown.view.records
        if not records:
            self.panels.show_plots(b"", b"")
            return
        viewed = None if shown.record is None else shown.record.index
        schedule, norms = io.BytesIO(), io.BytesIO()
        plots.schedule_figure(records, schedule, branches, viewed=viewed)
        plots.norms_figure(records, norms, viewed=viewed)
        self.panels.show_plots(schedule.getvalue(), norms.getvalue())

    def _show_attention(self, shown: Shown, x0_decoded) -> None:
        """The chosen token's cross-attention map over the decoded x0-hat, with every token's share of mass on
        the foreground (stepviz.render.attention_pictures, as the TUI's attention screen and the export)."""
        from ..render.attention_pictures import foreground_shares, overlay, token_labels
        from ..render.preview import decode_images

        record = shown.record
        if record is None or getattr(record, "cross_attention", None) is None:
            self.panels.show_attention([], None, [], 0.0)
            return
        if self.attention_cache[0] is not record:  # another token of the same step costs no decode
            x0 = x0_decoded if x0_decoded is not None else decode_images(self.session.pipe,
                                                                         record.pred_original_sample)[0]
            cells, shares = foreground_shares(x0, record.cross_attention)
            maps = record.cross_attention.float().cpu().numpy()
            self.attention_cache = (record, x0, shares, float(cells.mean()), maps)
        _, x0, shares, area, maps = self.attention_cache
        labels = token_labels(shown.view.prompt_anatomy.tokens)[: len(maps)]
        chosen = self.panels.attention_token.value
        token = labels.index(chosen) if chosen in labels else min(1, len(labels) - 1)
        self.syncing = True  # the token menu's options are set here: its observer stays quiet
        try:
            self.panels.show_attention(labels, overlay(x0, maps[token]), shares, area)
        finally:
            self.syncing = False

    def _extra_picture(self, view, kind: str):
        """The extra UNet inputs (inpainting model, Depth2Img) as the export draws them, once per kind."""
        from ..render.strip import extra_channels_image

        if not view.extra_channels:
            return None
        if self._extra_cache[0] != kind:
            self._extra_cache = (kind, extra_channels_image(self.session.pipe, view.extra_channels, kind))
        return self._extra_cache[1]

    def _sync_controls(self, view, index: int | None) -> None:
        """Timeline, guidance and scheduler controls as the run now is (their observers stay quiet)."""
        panels = self.panels
        self.syncing = True
        try:
            taken = len(view.records)
            panels.timeline.max = max(taken, 0)
            panels.timeline.value = taken if index is None else index + 1
            panels.show_scheduler(view.scheduler)
            panels.guidance.value = f"{view.guidance_scale:g}"
        finally:
            self.syncing = False


def lesson_runs(session) -> list[str]:
    """The lesson's [[compare]] runs the session holds (built by Debugger at its start)."""
    return [name for name in session.steppers if name.startswith("compare-")]
