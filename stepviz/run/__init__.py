"""A run as the front-ends hold it: its settings (from the CLI or a lesson), the session (steppers under a lock,
frozen views for the widgets) and the readouts (its numbers in words). Plain Python: no Textual, no Jupyter."""
