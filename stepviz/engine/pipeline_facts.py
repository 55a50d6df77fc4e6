"""What stepviz knows about a loaded pipeline, kept beside it in a table keyed by the pipeline, never on it.

    facts = facts_of(pipe)   # the same PipelineFacts for the same pipeline, empty at first
    facts.notices            # what loading noticed (models/loading.py fills these; the Stepper shows them)

The table holds the pipelines weakly (as engine/attention.py holds the UNets): a pipeline that is dropped
takes its facts with it. A pipeline built outside stepviz has empty facts.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

NOT_LOOKED_UP = object()  # a cached value not computed yet (None is a valid answer: "there is none")


@dataclass
class PipelineFacts:
    model_id: str | None = None  # what the user named: "toy", a folder, a hub id, a file
    folder: Path | None = None  # the model's folder on disk (None: not loaded from a folder)
    parts: dict = field(default_factory=dict)  # part name -> its folder, when a part is shared between models
    notices: list[str] = field(default_factory=list)  # what loading noticed, one line each
    latent_rgb: object = NOT_LOOKED_UP  # render/preview.py: (factors [C, 3], bias [3]) of the approx preview
    preview_decoder: object = NOT_LOOKED_UP  # render/preview.py: the tiny decoder, or None when none ships
    decode_seconds: tuple[float, int] | None = None  # render/preview.py: the last full decode (s per picture, pixels)


_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def facts_of(pipe) -> PipelineFacts:
    """The facts kept for this pipeline (made empty on first use)."""
    facts = _FACTS.get(pipe)
    if facts is None:
        facts = _FACTS[pipe] = PipelineFacts()
    return facts
