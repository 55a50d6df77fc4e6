"""x_t and x0-hat side by side, in the chosen preview kind (full decode, approximate RGB, channels), and the
pictures the run takes (img2img, inpaint, depth2img: the input, and the mask), as given."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from .picture import Picture

KIND_NAMES = {"full": "VAE decode", "approx": "approx RGB", "channels": "latent channels"}
INPUT_CAPTIONS = {"input": "input", "mask": "mask (white: new)"}
PREVIEW_CYCLE = ("approx", "channels", "full")  # the order `v` goes through them


def next_kind(kind: str) -> str:
    """The preview kind `v` switches to from `kind`."""
    return PREVIEW_CYCLE[(PREVIEW_CYCLE.index(kind) + 1) % len(PREVIEW_CYCLE)]


def default_preview(pipe) -> str:
    """The full VAE decode where it is cheap (pictures up to 128 px: the toy's 64 px decode takes milliseconds,
    and only it shows the toy's colours as they are); approximate RGB for bigger models, where a decode per
    step costs seconds on a CPU."""
    try:
        side = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    except (AttributeError, TypeError):
        return "approx"
    return "full" if side <= 128 else "approx"


def start_labels(mode: str, strength: float | None) -> list[str]:
    """What x_t is before the first step: noise, or (img2img, depth2img, inpaint below 1) the noised input;
    longest first, for the caption to take the longest that fits. `strength`: what the run used."""
    if mode != "txt2img" and strength is not None and strength < 1:
        return [f"x_start: the input noised (strength {strength:g})", f"input noised, s {strength:g}",
                "input noised", "x_start"]
    return ["x_T (start noise)", "x_T noise", "x_T"]


class PreviewPanel(Horizontal):
    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics
        self.wanted = ""  # the kind asked for, shown in the title while it is drawn

    def compose(self) -> ComposeResult:
        yield Picture("x_t", self.graphics, id="x_t")
        yield Picture("x0-hat", self.graphics, id="x0")
        for role, caption in INPUT_CAPTIONS.items():
            picture = Picture(caption, self.graphics, id=f"given-{role}")
            picture.display = False
            yield picture

    def on_mount(self) -> None:
        self.border_title = "previews"

    def drawing(self, kind: str) -> None:
        """A new kind was asked for: say so in the title until its pictures arrive (a VAE decode can be slow)."""
        self.wanted = kind
        self.border_title = f"previews: drawing {KIND_NAMES.get(kind, kind)}..."

    def show(self, pictures: dict, kind: str, step: int, mode: str = "txt2img", strength: float | None = None,
             inputs: dict | None = None) -> None:
        """Pictures keyed 'x_t' and 'x0' (x0 missing before the first step); `inputs` the run's given pictures."""
        name = KIND_NAMES.get(kind, kind)
        title = f"previews: {name} (v to change)"
        if self.border_title != title:
            self.border_title = title
        labels = start_labels(mode, strength) if step == 0 else [f"x_t after step {step}", f"x_t step {step}"]
        self.query_one("#x_t", Picture).show(pictures.get("x_t"), labels)  # 3 pictures at 80 columns: 11 each
        x0_label = ["x0-hat: take a step", "x0-hat"] if step == 0 else "x0-hat"
        self.query_one("#x0", Picture).show(pictures.get("x0"), x0_label)
        for role in INPUT_CAPTIONS:
            picture = self.query_one(f"#given-{role}", Picture)
            given = (inputs or {}).get(role)
            picture.display = given is not None
            if given is not None:
                picture.show(given)
