"""Inpaint mode: the blend x = m * generated + (1 - m) * re-noised original, one picture per term."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from ...render.step_pictures import BLEND_ROLES
from .picture import Picture

CAPTIONS = {  # short: four pictures share half of an 80-column row
    "mask": "mask m",
    "background": "re-noised orig.",
    "generated": "generated",
    "blended": "blended",
}


class BlendPanel(Horizontal):
    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics

    def compose(self) -> ComposeResult:
        for role in BLEND_ROLES:
            yield Picture(CAPTIONS[role], self.graphics, id=f"blend-{role}")

    def on_mount(self) -> None:
        self.border_title = "inpaint blend (latent size): m * generated + (1 - m) * re-noised original"

    def show(self, pictures: dict) -> None:
        for role in BLEND_ROLES:
            self.query_one(f"#blend-{role}", Picture).show(pictures.get(role))
