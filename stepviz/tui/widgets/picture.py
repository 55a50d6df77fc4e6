"""A labelled picture, drawn by textual-image with the renderer chosen by name."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.css.scalar import Scalar
from textual.widgets import Label

from ..cell_size import prime_cell_size

prime_cell_size()  # before textual_image.widget, which asks the terminal when imported
from textual_image.widget import HalfcellImage, Image as AutoImage, SixelImage, TGPImage  # noqa: E402

GRAPHICS = ("auto", "sixel", "tgp", "halfcell")


def picture_class(graphics: str):
    """The textual-image widget for a --graphics name (halfcell works everywhere, also in a browser)."""
    classes = {"auto": AutoImage, "sixel": SixelImage, "tgp": TGPImage, "halfcell": HalfcellImage}
    if graphics not in classes:
        raise ValueError(f"graphics={graphics!r} is unknown: use one of {', '.join(GRAPHICS)}")
    return classes[graphics]


def fit_cells(width: int, height: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(columns, rows) for a picture in a width x height box, keeping its shape (a cell is 1:2)."""
    iw, ih = image_size
    columns = max(1, min(width, int(2 * height * iw / max(ih, 1))))
    rows = max(1, min(height, round(columns * ih / max(iw, 1) / 2)))
    return columns, rows


class Picture(Vertical):
    """A caption over a picture; `show(image)` with a PIL image, or None for a blank."""

    DEFAULT_CSS = """
    Picture { width: 1fr; height: 1fr; padding-right: 1; }
    Picture > .picture--caption { height: 1; width: 1fr; }
    """

    def __init__(self, caption: str, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.caption, self.graphics = caption, graphics
        self._picture_size = (1, 1)
        self._caption_shown = caption

    def compose(self) -> ComposeResult:
        yield Label(self.caption, classes="picture--caption")
        yield picture_class(self.graphics)(None, classes="picture--image")

    def show(self, image, caption: str | list[str] | None = None) -> None:
        """`caption`: a text, or texts longest first (the longest that fits the picture's width is shown)."""
        widget = self.query_one(".picture--image")
        if image is not widget.image:  # drawing a picture in cells is costly: only a new one
            if image is not None:
                self._picture_size = image.size
            widget.image = image
            self._fit()
        if caption is not None:
            self._captions = [caption] if isinstance(caption, str) else list(caption)
            self._fit_caption()

    _captions: list[str] = []

    def _fit_caption(self) -> None:
        room = self.content_size.width
        caption = next((text for text in self._captions if len(text) <= room), None) if room else None
        caption = caption or (self._captions[-1] if self._captions else None)
        if caption is not None and caption != self._caption_shown:
            self._caption_shown = caption
            self.query_one(".picture--caption", Label).update(caption)

    def on_resize(self) -> None:
        self._fit()
        self._fit_caption()

    def _fit(self) -> None:
        columns, rows = fit_cells(self.content_size.width, self.content_size.height - 1, self._picture_size)
        widget = self.query_one(".picture--image")
        if (widget.styles.width, widget.styles.height) != (Scalar.from_number(columns), Scalar.from_number(rows)):
            widget.styles.width, widget.styles.height = columns, rows
