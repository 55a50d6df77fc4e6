"""Latents and records drawn as pictures: previews, channel and attention pictures, strips, sheets, plots.

Shared by the TUI, the notebook and the exporter; imports nothing of the front-ends.
"""

PREVIEW_KINDS = ("full", "approx", "channels")  # how latents are shown: VAE decode, approximate RGB, channels
