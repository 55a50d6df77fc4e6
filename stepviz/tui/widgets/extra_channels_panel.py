"""Inpainting model (SD's 9-channel UNet, SD3's 33-channel transformer) and Depth2Img: the model's input channels
besides x_t, the same at every step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from ...render.channel_pictures import EXTRA_CHANNELS, channel_count, model_input_formula
from .picture import Picture

CAPTIONS = {
    "mask": "mask m (1 channel)",
    "masked_image_latents": "E(image * (1 - m)) ({channels})",
    "depth": "depth (1 channel, near = light)",
}


class ExtraChannelsPanel(Horizontal):
    """One picture per extra channel group; the others hidden. `names` are Stepper.extra_channels' keys."""

    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics
        self._shown: tuple = ((), "")

    def compose(self) -> ComposeResult:
        for role in EXTRA_CHANNELS:
            yield Picture(CAPTIONS[role].format(channels=EXTRA_CHANNELS[role][1]), self.graphics, id=f"extra-{role}")

    @property
    def _names(self) -> tuple[str, ...]:
        return self._shown[0]

    def set_channels(self, extra_channels, denoiser: str = "UNet") -> None:
        """Show the panel for these channels (Stepper.extra_channels; none: hide it), as `denoiser`'s input."""
        names = tuple(name for name in EXTRA_CHANNELS if name in extra_channels)
        formula = model_input_formula(extra_channels, denoiser) if names else ""
        if (names, formula) == self._shown:
            return
        self._shown = (names, formula)
        self.display = bool(names)
        self.border_title = formula
        for role in EXTRA_CHANNELS:
            picture = self.query_one(f"#extra-{role}", Picture)
            picture.display = role in names
            if role in names:  # E(masked image) has the VAE's channel count: SD 4, SD3 16
                caption = CAPTIONS[role].format(channels=channel_count(extra_channels, role))
                picture.show(picture.query_one(".picture--image").image, caption=caption)

    def show(self, pictures: dict) -> None:
        for role in self._names:
            self.query_one(f"#extra-{role}", Picture).show(pictures.get(role))
