"""The attention panel: one token's cross-attention map over x0-hat or x_t, the tokens to pick from, and the
share of the map's mass on the foreground; and the zoom view, every token's map in a grid."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Static

from ...render.attention_pictures import CONTRAST_TOP
from .picture import Picture

BAR_WIDTH = 20  # characters for a share of 100% (fits beside the map at 80 columns)
GRID_TOKENS = 24  # the zoom view shows at most this many tokens (a prompt of the toy has about 10)
UNDER_NAMES = {"x0": "x0-hat", "x_t": "x_t"}


def tokens_line(labels: list[str], selected: int) -> str:
    """The prompt's tokens with their numbers (keys 1-9), the selected one highlighted."""
    parts = []
    for i, label in enumerate(labels):
        text = f"{i + 1}:{label}" if i < 9 else label
        parts.append(f"[reverse]{text}[/reverse]" if i == selected else text)
    return "tokens  " + "  ".join(parts)


def share_text(label: str, share: float, area: float) -> str:
    """The mass inside vs outside the foreground, against what an even spread would put there."""
    if area <= 0:
        return f"'{label}': no foreground found in x0-hat at this step (nothing far from the border colour)"
    return (f"'{label}': {share:.0%} of its attention mass on the foreground, {1 - share:.0%} outside.\n"
            f"The foreground covers {area:.0%} of the picture: an even spread would put {area:.0%} there "
            f"({share / area:.2f}x that).\nMap colours: dark red = an even spread, white = {CONTRAST_TOP:g}x its mean.")


def shares_table(labels: list[str], shares: list[float], area: float, selected: int) -> str:
    """Every token's share on the foreground, as numbers and bars (the selected one marked)."""
    width = max(len(label) for label in labels)
    rows = []
    for i, (label, share) in enumerate(zip(labels, shares)):
        bar = "█" * round(share * BAR_WIDTH)
        mark = ">" if i == selected else " "
        rows.append(f"{mark}{label:<{width}} {share:4.0%} {bar}")
    rows.append(f" {'even':<{width}} {area:4.0%} {'┆' * round(area * BAR_WIDTH)}")
    return "\n".join(rows)


class AttentionPanel(Vertical):
    """Selected token: its map over the picture, its numbers, and every token's share beside it."""

    DEFAULT_CSS = """
    AttentionPanel { height: 1fr; }
    AttentionPanel #attention-tokens { height: auto; }
    AttentionPanel #attention-body { height: 1fr; }
    AttentionPanel #attention-map { width: 1fr; }
    AttentionPanel #attention-numbers { width: 1fr; padding: 0 1; }
    """

    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics

    def compose(self) -> ComposeResult:
        yield Static("", id="attention-tokens")
        with Horizontal(id="attention-body"):
            yield Picture("map", self.graphics, id="attention-map")
            yield Static("", id="attention-numbers")

    def show(self, labels, selected, picture, under: str, share: float, shares, area: float) -> None:
        self.query_one("#attention-tokens", Static).update(tokens_line(labels, selected))
        self.query_one("#attention-map", Picture).show(
            picture, f"'{labels[selected]}' over {UNDER_NAMES[under]}")
        self.query_one("#attention-numbers", Static).update(
            share_text(labels[selected], share, area) + "\n\n" + shares_table(labels, shares, area, selected))

    def message(self, text: str) -> None:
        self.query_one("#attention-tokens", Static).update(text)
        self.query_one("#attention-map", Picture).show(None, "")
        self.query_one("#attention-numbers", Static).update("")


class AttentionGrid(Grid):
    """The zoom view: every token's map over the same picture, each captioned with its share on the foreground."""

    DEFAULT_CSS = """
    AttentionGrid { grid-size: 5; grid-gutter: 0 1; height: 1fr; }
    """

    def __init__(self, graphics: str = "halfcell", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics

    def compose(self) -> ComposeResult:
        for i in range(GRID_TOKENS):
            yield Picture("", self.graphics, id=f"attention-grid-{i}")

    def show(self, labels, pictures, shares, area: float, selected: int) -> None:
        """Captions: the token, its share on the foreground and that share against an even spread's."""
        count = min(len(labels), GRID_TOKENS)
        self.styles.grid_size_columns = 5 if count > 8 else max(1, min(count, 4))
        for i in range(GRID_TOKENS):
            cell = self.query_one(f"#attention-grid-{i}", Picture)
            cell.display = i < count
            if i < count:
                mark = ">" if i == selected else ""
                against_even = f" ({shares[i] / area:.1f}x)" if area > 0 else ""
                cell.show(pictures[i], f"{mark}{labels[i]} {shares[i]:.0%}{against_even}")
