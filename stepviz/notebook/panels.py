"""The widget's parts (ipywidgets) and how a step is shown in them.

Only layout and formatting live here: the pictures and plots come from `stepviz.render`, the text from
`stepviz.render.readouts`, as in the TUI and the export. Pictures travel as PNG bytes; small ones (the toy's
64 px) are enlarged with nearest-neighbour so each pixel stays a visible square.
"""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
from PIL import Image

from ..engine.schedulers import SCHEDULERS
from ..render import PREVIEW_KINDS
from ..render.readouts import prompt_text, status_text

READABLE_SIDE = 256  # pictures are shown at least this many pixels wide
BLEND_CAPTIONS = {"mask": "mask m (latent size)", "background": "re-noised original",
                  "generated": "generated (inside m)", "blended": "blended: m·generated + (1−m)·original"}
BRANCHES = ("main", "fork", "both")


def png(picture: Image.Image | None, side: int = READABLE_SIDE) -> bytes:
    """PNG bytes of a picture, enlarged by a whole factor until it is at least `side` pixels wide."""
    if picture is None:
        return b""
    factor = max(1, -(-side // max(picture.width, 1)))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def markup_html(text: str) -> str:
    """Rich markup (the TUI's colours, e.g. in readouts.guidance_text) as an HTML <pre> block."""
    from rich.console import Console
    from rich.text import Text

    # force_jupyter=False: in a notebook Rich would otherwise display the text itself, below the widget
    console = Console(record=True, width=100, file=io.StringIO(), color_system="truecolor", force_jupyter=False)
    console.print(Text.from_markup(text))
    return console.export_html(inline_styles=True, code_format="<pre style='margin:0;line-height:1.35'>{code}</pre>")


def pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(text)}</pre>"


def captioned(caption: str, image: widgets.Image) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(caption)}</b>"), image])


def picture_widget(width: str = f"{READABLE_SIDE}px") -> widgets.Image:
    return widgets.Image(format="png", layout=widgets.Layout(width=width, min_height="32px"))


class Panels:
    """Every control and readout of the debugger; `root` is the widget that is displayed."""

    def __init__(self, title: str = "", description: str = "", kind: str = "full", scheduler: str = "ddim"):
        button = lambda text, icon, tip: widgets.Button(description=text, icon=icon, tooltip=tip,  # noqa: E731
                                                        layout=widgets.Layout(width="auto"))
        self.step = button("step", "step-forward", "one scheduler step")
        self.play = button("play", "play", "step until the end (or a lesson's pause)")
        self.pause = button("pause", "pause", "stop after the step in progress")
        self.rewind = button("rewind here", "undo", "drop the steps after the one looked at, and go on from there")
        self.fork = button("fork", "code-fork", "an independent copy of the run at the step looked at, to compare")
        self.timeline = widgets.IntSlider(value=0, min=0, max=0, description="look at step", continuous_update=False,
                                          style={"description_width": "initial"},
                                          layout=widgets.Layout(width="60%"))
        self.guidance = widgets.Text(value="", description="guidance scale", continuous_update=False,
                                     style={"description_width": "initial"}, layout=widgets.Layout(width="220px"))
        self.apply_guidance = button("apply", "check", "use this guidance scale from the next step on")
        self.scheduler = widgets.Dropdown(options=list(SCHEDULERS), description="scheduler",
                                          layout=widgets.Layout(width="220px"))
        self.show_scheduler(scheduler)
        self.kind = widgets.ToggleButtons(options=list(PREVIEW_KINDS), value=kind, description="preview",
                                          tooltips=["full VAE decode", "linear latent-to-RGB approximation",
                                                    "the latent channels as grey tiles"],
                                          style={"button_width": "80px"})
        self.branch = widgets.ToggleButtons(options=list(BRANCHES), value="main", description="controls act on",
                                            style={"description_width": "initial", "button_width": "60px"},
                                            layout=widgets.Layout(display="none"))
        self.export_folder = widgets.Text(value="stepviz-export", description="export to",
                                          layout=widgets.Layout(width="320px"))
        self.export_replace = widgets.Checkbox(value=False, description="replace an earlier stepviz export",
                                               indent=False)
        self.export = button("export handout", "download", "write the handout (index.html, strip, plots, metrics)")

        self.header = widgets.HTML(self._header(title, description))
        self.status = widgets.HTML()
        self.busy = widgets.HTML()
        self.error = widgets.HTML()
        self.x_t, self.x0 = picture_widget(), picture_widget()
        self.blend = {role: picture_widget("160px") for role in BLEND_CAPTIONS}
        self.blend_box = widgets.VBox([widgets.HTML("<b>inpaint blend</b> (after the scheduler step)"),
                                       widgets.HBox([captioned(BLEND_CAPTIONS[r], self.blend[r]) for r in self.blend])],
                                      layout=widgets.Layout(display="none"))
        self.extra = widgets.Image(format="png")
        self.extra_box = widgets.VBox([widgets.HTML("<b>the UNet's extra input channels</b>"), self.extra],
                                      layout=widgets.Layout(display="none"))
        self.guidance_numbers = widgets.HTML()
        self.attention_token = widgets.Dropdown(options=[], description="token")
        self.attention = picture_widget()
        self.attention_text = widgets.HTML()
        self.attention_box = widgets.VBox(
            [widgets.HTML("<b>cross-attention</b>: where the chosen token's attention falls, over x0-hat "
                          "(white: 2.5 times an even spread or more, dark red: even, black: none)"),
             widgets.HBox([widgets.VBox([self.attention_token, self.attention]), self.attention_text])],
            layout=widgets.Layout(display="none"))
        self.schedule_plot = widgets.Image(format="png", layout=widgets.Layout(width="49%"))
        self.norms_plot = widgets.Image(format="png", layout=widgets.Layout(width="49%"))
        self.prompt = widgets.HTML()
        self.notes = widgets.HTML(layout=widgets.Layout(max_height="16em", overflow="auto"))
        self._notes: list[str] = []
        self.compare_views = {name: (widgets.HTML(), picture_widget("192px"), picture_widget("192px"))
                              for name in ("main", "fork")}
        self.compare_box = widgets.VBox(
            [widgets.HTML("<b>compare</b>: the main run and its fork, each at its latest step"),
             widgets.HBox([widgets.VBox([status, widgets.HBox([captioned("x_t", x_t), captioned("x0-hat", x0)])],
                                        layout=widgets.Layout(width="50%"))
                           for status, x_t, x0 in self.compare_views.values()])],
            layout=widgets.Layout(display="none"))
        self.lesson_views: dict[str, tuple] = {}  # a lesson's [[compare]] run -> (status, x_t, x0-hat)
        self.lesson_row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.lesson_box = widgets.VBox(
            [widgets.HTML("<b>the lesson's runs</b> (the runs its notes compare), each at the step shown above"),
             self.lesson_row], layout=widgets.Layout(display="none"))
        self.root = widgets.VBox([
            self.header, self.status,
            widgets.HBox([self.step, self.play, self.pause, self.rewind, self.fork, self.busy]),
            self.timeline,
            widgets.HBox([self.guidance, self.apply_guidance, self.scheduler]),
            self.kind, self.branch, self.error,
            widgets.HBox([captioned("x_t (the latents after the step)", self.x_t),
                          captioned("x0-hat (the predicted clean image)", self.x0),
                          widgets.VBox([widgets.HTML("<b>guidance</b>"), self.guidance_numbers],
                                       layout=widgets.Layout(margin="0 0 0 1.5em"))]),
            self.blend_box, self.extra_box, self.attention_box, self.lesson_box,
            widgets.HBox([self.schedule_plot, self.norms_plot]),
            widgets.HTML("<b>prompt anatomy</b>"), self.prompt,
            widgets.HTML("<b>notes</b>"), self.notes,
            self.compare_box,
            widgets.HBox([self.export_folder, self.export_replace, self.export]),
        ])

    @staticmethod
    def _header(title: str, description: str) -> str:
        parts = [f"<h3 style='margin:0.2em 0'>{html.escape(title)}</h3>" if title else "",
                 "".join(f"<p style='margin:0.3em 0'>{html.escape(p.strip())}</p>"
                         for p in description.strip().split("\n\n") if p.strip())]
        return "".join(parts) or "<b>stepviz</b>"

    # ------------------------------------------------------------ showing
    def show_status(self, shown) -> None:
        self.status.value = pre(status_text(shown.view, shown.record))

    def show_numbers(self, shown) -> None:
        from ..render.readouts import guidance_text

        self.guidance_numbers.value = (pre("take a step to see the two branches") if shown.record is None
                                       else markup_html(guidance_text(shown.record)))
        self.prompt.value = pre(prompt_text(shown.view.prompt_anatomy, shown.view.negative_anatomy))

    def show_pictures(self, pictures: dict, extra: Image.Image | None) -> None:
        self.x_t.value = png(pictures.get("x_t"))
        self.x0.value = png(pictures.get("x0"))
        blend = "mask" in pictures
        self.blend_box.layout.display = None if blend else "none"
        for role, image in self.blend.items():
            image.value = png(pictures.get(role), 160)
        self.extra_box.layout.display = None if extra is not None else "none"
        self.extra.value = png(extra, 0)

    def show_attention(self, labels: list[str], picture: Image.Image | None, shares: list[float], area: float) -> None:
        """The chosen token's map over x0-hat, and every token's share of attention on the foreground."""
        self.attention_box.layout.display = None if picture is not None else "none"
        if picture is None:
            return
        if list(self.attention_token.options) != labels:
            chosen = self.attention_token.value
            self.attention_token.options = labels
            self.attention_token.value = chosen if chosen in labels else labels[min(1, len(labels) - 1)]
        self.attention.value = png(picture)
        rows = "".join(f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>{share:.0%}</td></tr>"
                       for label, share in zip(labels, shares))
        self.attention_text.value = (f"<p>share of each token's attention mass on the foreground (the shape, "
                                     f"{area:.0%} of the picture):</p><table>{rows}</table>")

    def show_plots(self, schedule: bytes, norms: bytes) -> None:
        self.schedule_plot.value, self.norms_plot.value = schedule, norms

    def show_compare(self, name: str, shown, pictures: dict) -> None:
        self.compare_box.layout.display = None
        self.branch.layout.display = None
        status, x_t, x0 = self.compare_views[name]
        status.value = f"<b>{name}</b>" + pre(status_text(shown.view, shown.record))
        x_t.value, x0.value = png(pictures.get("x_t"), 192), png(pictures.get("x0"), 192)

    def show_lesson_run(self, name: str, label: str, shown, pictures: dict) -> None:
        """One of the lesson's compared runs ("guidance 1", "the ladder", ...) beside the others."""
        if name not in self.lesson_views:
            status, x_t, x0 = widgets.HTML(), picture_widget("160px"), picture_widget("160px")
            self.lesson_views[name] = (status, x_t, x0)
            column = widgets.VBox([status, widgets.HBox([captioned("x_t", x_t), captioned("x0-hat", x0)])],
                                  layout=widgets.Layout(margin="0 1.5em 0.5em 0"))
            self.lesson_row.children = [*self.lesson_row.children, column]
            self.lesson_box.layout.display = None
        status, x_t, x0 = self.lesson_views[name]
        step = shown.record.index + 1 if shown.record is not None else 0
        status.value = f"<b>{html.escape(label)}</b>: step {step} of {shown.view.total_steps}"
        x_t.value, x0.value = png(pictures.get("x_t"), 160), png(pictures.get("x0"), 160)

    def note(self, text: str) -> None:
        """A note, shown whole (wrapped); the newest last."""
        self._notes.append(text)
        self.notes.value = "".join(f"<p style='margin:0.25em 0'>{html.escape(n)}</p>" for n in self._notes)

    def show_scheduler(self, name: str) -> None:
        """The menu on the run's scheduler (a pipeline's own unlisted one joins the menu under its class name)."""
        if name not in self.scheduler.options:
            self.scheduler.options = [*self.scheduler.options, name]
        self.scheduler.value = name

    def show_error(self, text: str | None) -> None:
        self.error.value = "" if not text else f"<span style='color:#c0392b'><b>{html.escape(text)}</b></span>"

    def show_busy(self, text: str) -> None:
        self.busy.value = f"<i>{html.escape(text)}</i>" if text else ""
