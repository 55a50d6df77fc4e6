"""stepviz.trace: record a hand-written sampling loop and name its first divergence from the pipeline.

    with stepviz.trace(pipe) as tr:
        ...                       # the loop, calling pipe.unet, pipe.scheduler, pipe.vae as it likes
    report = tr.compare()

It sits on top of the engine: recorder.py wraps the pipeline's modules and the scheduler, loop.py reads
the recorded calls as steps, reference.py runs the engine's Stepper on what the loop used, compare.py
walks both step by step, causes.py names a classic mistake, report_text.py prints the report,
script.py runs a user's script with its pipelines traced, replay.py shows a recording as a run,
flow.py does the same for a flow loop (SD3, FLUX.1) with the classic flow mistakes as causes.

`stepviz.trace` is both this package and the function that starts a trace: the package is callable, so
importing one of its modules (which binds the name `stepviz.trace` to the package) keeps
`stepviz.trace(pipe)` working.
"""

import sys
import types


def trace(pipe):
    """Record the loop run inside the `with` block on this pipeline: compare.Trace, or flow.FlowTrace for
    an SD3 / FLUX.1 pipeline."""
    from ..engine.families import is_flow_class

    if is_flow_class(type(pipe).__name__):
        from .flow import FlowTrace

        return FlowTrace(pipe)
    from .compare import Trace

    return Trace(pipe)


class _CallablePackage(types.ModuleType):
    def __call__(self, pipe):
        return trace(pipe)


sys.modules[__name__].__class__ = _CallablePackage
