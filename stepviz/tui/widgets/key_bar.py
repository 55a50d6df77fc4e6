"""The key bar: every key of the screen, always. Long words when they fit, short ones when not, two rows
before any key is dropped (Textual's footer cuts the last keys at 80 columns: quit and help went first)."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual.widget import Widget


class Key(NamedTuple):
    key: str  # as shown: "space", "←→", "?"
    long: str
    short: str = ""


def key_rows(keys: list[Key], width: int) -> Text:
    """The keys in as few rows as fit `width`: long words, else short words, wrapped between keys."""
    for words in ("long", "short"):
        items = [(key.key, getattr(key, words) or key.long) for key in keys]
        if sum(len(k) + len(w) + 2 for k, w in items) - 1 <= width or words == "short":
            break
    text, used = Text(), 0
    for key, word in items:
        size = len(key) + len(word) + 1
        if used and used + 1 + size > width:
            text.append("\n")
            used = 0
        elif used:
            text.append(" ")
            used += 1
        text.append(key, style="bold reverse")
        text.append(f" {word}" if word else "")
        used += size
    return text


class KeyBar(Widget):
    DEFAULT_CSS = "KeyBar { height: auto; dock: bottom; background: $panel; }"

    def __init__(self, keys: list[Key] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys = list(keys or [])

    def set_keys(self, keys: list[Key]) -> None:
        if list(keys) != self._keys:
            self._keys = list(keys)
            self.refresh(layout=True)

    def render(self) -> Text:
        return key_rows(self._keys, max(self.size.width, 20))

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(key_rows(self._keys, max(width, 20)).plain.split("\n"))
