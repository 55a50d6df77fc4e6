"""Prompt anatomy: tokens and ids, embedding shape, truncation notice."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from ...render.readouts import prompt_text
from ...run.session import Shown


class PromptPanel(Static):
    shown: reactive[Shown | None] = reactive(None, always_update=True)
    _text: str | None = None

    def on_mount(self) -> None:
        self.border_title = "prompt anatomy"

    def watch_shown(self, shown: Shown | None) -> None:
        text = prompt_text(None) if shown is None else prompt_text(shown.view.prompt_anatomy,
                                                                     shown.view.negative_anatomy,
                                                                     shown.view.added_conditioning)
        if text != self._text:  # a step leaves the prompt as it is, and an update costs a layout
            self._text = text
            self.update(text)
