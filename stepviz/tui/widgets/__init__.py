"""The panels of the main screen, one widget per file."""
