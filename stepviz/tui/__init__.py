"""The terminal UI (Textual). Nothing outside stepviz.tui imports it, except the CLI."""
