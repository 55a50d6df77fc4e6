"""Inpainting model and Depth2Img: the UNet's input channels besides x_t, the same at every step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from ...render.channel_pictures import EXTRA_CHANNELS, unet_input_formula
from .picture import Picture

CAPTIONS = {
    "mask": "mask m (1 channel)",
    "masked_image_latents": "E(image * (1 - m)) (4)",
    "depth": "depth (1 channel, near = light)",
}


class ExtraChannelsPanel(Horizontal):
    """One picture per extra channel group; the others hidden. `names` are Stepper.extra_channels' keys."""

    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics
        self._names: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        for role in EXTRA_CHANNELS:
            yield Picture(CAPTIONS[role], self.graphics, id=f"extra-{role}")

    def set_channels(self, names) -> None:
        """Show the panel for these channels (none: hide it)."""
        names = tuple(name for name in EXTRA_CHANNELS if name in names)
        if names == self._names:
            return
        self._names = names
        self.display = bool(names)
        self.border_title = unet_input_formula(names) if names else ""
        for role in EXTRA_CHANNELS:
            self.query_one(f"#extra-{role}", Picture).display = role in names

    def show(self, pictures: dict) -> None:
        for role in self._names:
            self.query_one(f"#extra-{role}", Picture).show(pictures.get(role))
