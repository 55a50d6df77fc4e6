"""x_t and x0-hat side by side, in the chosen preview kind (full decode, approximate RGB, channels)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from .picture import Picture

KIND_NAMES = {"full": "VAE decode", "approx": "approx RGB", "channels": "4 latent channels"}


class PreviewPanel(Horizontal):
    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics

    def compose(self) -> ComposeResult:
        yield Picture("x_t", self.graphics, id="x_t")
        yield Picture("x0-hat", self.graphics, id="x0")

    def on_mount(self) -> None:
        self.border_title = "previews"

    def show(self, pictures: dict, kind: str, step: int) -> None:
        """Pictures keyed 'x_t' and 'x0' (x0 missing before the first step)."""
        name = KIND_NAMES.get(kind, kind)
        title = f"previews: {name} (v to change)"
        if self.border_title != title:
            self.border_title = title
        label = "x_T (start noise)" if step == 0 else f"x_t after step {step}"
        self.query_one("#x_t", Picture).show(pictures.get("x_t"), label)
        x0_label = "x0-hat: take a step" if step == 0 else "x0-hat"
        self.query_one("#x0", Picture).show(pictures.get("x0"), x0_label)
