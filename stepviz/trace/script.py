"""Run a user's script with its pipelines traced (`stepviz trace SCRIPT.py [ARGS...]`).

The script is the user's own code, run as `python SCRIPT.py ARGS` would run it (its folder first on sys.path,
`__name__ == "__main__"`). Every Stable Diffusion pipeline it builds, and every flow pipeline (SD3, FLUX.1,
toy-flow; flow.py names the flow mistakes), through `stepviz.load_pipeline` or diffusers directly, is traced
from the moment it is constructed; after the script ends, however it ends (at its last line, by sys.exit, or
by an exception), each loop it ran gets its report (the reference uses the pipeline's scheduler config as
constructed).
"""

from __future__ import annotations

import functools
import runpy
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScriptEnding:
    """How the user's script ended: "finished" (its last line), "exit" (sys.exit / SystemExit) or "exception"."""

    how: str
    code: int | None = None  # sys.exit's status (an int), for "exit"
    message: str | None = None  # SystemExit's text, or the exception's one line
    traceback_text: str | None = None  # the exception as Python prints it, the script's frames only

    def describe(self) -> str | None:
        """A line for the report, or None when the script simply reached its end."""
        if self.how == "exit":
            said = f"SystemExit({self.message!r})" if self.message else f"sys.exit({self.code})"
            return f"the script ended with {said}; the verdict below is the trace's, whatever the script's status"
        if self.how == "exception":
            return f"the script raised {self.message} (its traceback above)"
        return None


def run_traced(path: Path, argv: list[str]) -> tuple[list, ScriptEnding]:
    """Run the script; (one `Trace` per loop it ran on a pipeline it built, how the script ended)."""
    import diffusers

    from ..engine.families import FLOW_CLASSES, SD_CLASSES
    from . import trace

    traces: list = []
    originals = {}

    def traced_init(cls, original):
        @functools.wraps(original)  # diffusers reads the constructor's signature to find the components
        def __init__(pipe, *args, **kwargs):
            original(pipe, *args, **kwargs)
            if type(pipe) is cls:  # once, by the class constructed (not again by a subclass's super())
                traces.append(trace(pipe).__enter__())  # compare.Trace, or flow.FlowTrace for SD3 / FLUX.1
        return __init__

    for name in SD_CLASSES + FLOW_CLASSES:  # SD 1.x/2.x and the flow family (SDXL loops are not traced yet)
        cls = getattr(diffusers, name)
        originals[cls] = cls.__init__
        cls.__init__ = traced_init(cls, cls.__init__)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv, sys.path[0:0] = [str(path), *argv], [str(path.resolve().parent)]
    try:
        with warnings.catch_warnings():  # diffusers' deprecation notices about the course's own calls
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"diffusers\.")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(diffusers|transformers)\.")
            ending = _run_script(path)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for cls, original in originals.items():
            cls.__init__ = original
        for tr in reversed(traces):
            tr.__exit__(None, None, None)
    loops, seen_models = [], set()
    for tr in reversed(traces):  # the latest pipeline first; pipelines sharing a UNet: the latest reports
        model = getattr(tr.pipe, "unet", None) or tr.pipe.transformer
        if id(model) in seen_models:
            continue
        if hasattr(tr, "recording") and tr.recording.steps:
            loops[0:0] = tr.loops()
        elif not hasattr(tr, "recording") and tr.steps():  # a flow loop (SD3, FLUX.1): one report per pipeline
            loops.insert(0, tr)
        else:
            continue
        seen_models.add(id(model))
    return loops, ending


def _run_script(path: Path) -> ScriptEnding:
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return ScriptEnding("exit", code=exc.code or 0)
        return ScriptEnding("exit", code=1, message=str(exc.code))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the user's own error: shown as theirs
        return ScriptEnding("exception", message=_one_line(exc), traceback_text=user_traceback(exc, path))
    return ScriptEnding("finished")


def user_traceback(exc: BaseException, path: Path) -> str:
    """The exception as Python prints it, without the frames of stepviz and runpy that ran the script."""
    frames = traceback.extract_tb(exc.__traceback__)
    script = str(path)  # runpy runs the script under the name it was given
    first = next((i for i, frame in enumerate(frames) if frame.filename == script), len(frames))
    lines = []
    if frames[first:]:
        lines += ["Traceback (most recent call last):\n", *traceback.format_list(frames[first:])]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
