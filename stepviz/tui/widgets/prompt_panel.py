"""Prompt anatomy: tokens and ids, embedding shape, truncation notice."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from ..readouts import prompt_text
from ..session import Shown


class PromptPanel(Static):
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.border_title = "prompt anatomy"

    def watch_shown(self, shown: Shown | None) -> None:
        if shown is None:
            self.update(prompt_text(None))
        else:
            self.update(prompt_text(shown.view.prompt_anatomy, shown.view.negative_anatomy))
