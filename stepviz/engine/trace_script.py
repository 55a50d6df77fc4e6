"""Run a user's script with its pipelines traced (`stepviz trace SCRIPT.py [ARGS...]`).

The script is the user's own code, run as `python SCRIPT.py ARGS` would run it (its folder first on sys.path,
`__name__ == "__main__"`). Every Stable Diffusion pipeline it builds, through `stepviz.load_pipeline` or
diffusers directly, is traced from the moment it is constructed; after the script ends, each pipeline whose
scheduler was stepped gets its report (the reference uses the pipeline's scheduler config as constructed).
"""

from __future__ import annotations

import functools
import runpy
import sys
from pathlib import Path


def run_traced(path: Path, argv: list[str]) -> list:
    """Run the script; the `Trace`s of the pipelines it built whose scheduler it stepped."""
    import diffusers

    from .sdxl import SD_CLASSES
    from .trace_compare import Trace

    traces: list[Trace] = []
    originals = {}

    def traced_init(cls, original):
        @functools.wraps(original)  # diffusers reads the constructor's signature to find the components
        def __init__(pipe, *args, **kwargs):
            original(pipe, *args, **kwargs)
            if type(pipe) is cls:  # once, by the class constructed (not again by a subclass's super())
                traces.append(Trace(pipe).__enter__())
        return __init__

    for name in SD_CLASSES:  # the SD 1.x/2.x pipelines (SDXL loops are not traced yet)
        cls = getattr(diffusers, name)
        originals[cls] = cls.__init__
        cls.__init__ = traced_init(cls, cls.__init__)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv, sys.path[0:0] = [str(path), *argv], [str(path.resolve().parent)]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for cls, original in originals.items():
            cls.__init__ = original
        for tr in reversed(traces):
            tr.__exit__(None, None, None)
    stepped, seen_unets = [], set()
    for tr in reversed(traces):  # the latest pipeline first; one report per UNet
        if tr.recording.steps and id(tr.pipe.unet) not in seen_unets:
            seen_unets.add(id(tr.pipe.unet))
            stepped.append(tr)
    return stepped[::-1]
