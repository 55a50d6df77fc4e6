"""The steps taken, one cell each: click one (or use the arrow keys) to look at its record."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from ...run.session import Shown


def cell_layout(total: int, width: int, viewed: int) -> tuple[int, int]:
    """(cell width, first step shown): cells wide enough for the step numbers and a space (up to 4 columns
    when all fit); when they do not all fit `width`, the window scrolls to keep `viewed` in the middle."""
    cell = max(len(str(max(total, 1))) + 1, min(4, width // max(total, 1)))
    visible = max(width // cell, 1)
    first = 0 if total <= visible else min(max(viewed - visible // 2, 0), total - visible)
    return cell, first


class Timeline(Widget):
    DEFAULT_CSS = "Timeline { height: 2; }"

    shown: reactive[Shown | None] = reactive(None, always_update=True)

    class Selected(Message):
        """The user clicked step `index` (0-based record index)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def _viewed(self) -> int:
        record = None if self.shown is None else self.shown.record
        return -1 if record is None else record.index

    def render(self) -> Text:
        shown = self.shown
        if shown is None:
            return Text("timeline: loading...")
        view, viewed = shown.view, self._viewed()
        total, taken = max(view.total_steps, 1), view.steps_taken
        cell, first = cell_layout(total, self.size.width, viewed)
        text = Text()
        numbered = cell > len(str(total))  # a number and a space fit in a cell: else blocks, never run together
        for i in range(first, min(total, first + self.size.width // cell)):
            if numbered:
                glyph = str(i + 1).rjust(cell - 1) + " "
            else:
                glyph = ("█" if i < taken or i == viewed else "·") * cell
            if i == viewed:
                style = "bold black on yellow"
            elif i < taken:
                style = "black on green" if numbered else "green"
            else:
                style = "grey42"
            text.append(glyph, style=style)
        where = "before the first step" if viewed < 0 else f"viewing step {viewed + 1}"
        text.append(f"\n{taken} of {total} steps taken, {where} (left/right or click)", style="dim")
        return text

    def on_click(self, event: events.Click) -> None:
        shown = self.shown
        if shown is None or event.y != 0:
            return
        cell, first = cell_layout(max(shown.view.total_steps, 1), self.size.width, self._viewed())
        index = first + event.x // cell
        if 0 <= index < shown.view.steps_taken:
            self.post_message(self.Selected(index))
