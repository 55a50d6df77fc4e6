"""stepviz.trace: record a hand-written sampling loop and name its first divergence from the pipeline.

    with stepviz.trace(pipe) as tr:
        ...                       # the loop, calling pipe.unet, pipe.scheduler, pipe.vae as it likes
    report = tr.compare()

It sits on top of the engine: recorder.py wraps the pipeline's modules and the scheduler, loop.py reads
the recorded calls as steps, reference.py runs the engine's Stepper on what the loop used, compare.py
walks both step by step, causes.py names a classic mistake, report_text.py prints the report,
script.py runs a user's script with its pipelines traced, replay.py shows a recording as a run.

`stepviz.trace` is both this package and the function that starts a trace: the package is callable, so
importing one of its modules (which binds the name `stepviz.trace` to the package) keeps
`stepviz.trace(pipe)` working.
"""

import sys
import types


def trace(pipe):
    """Record the loop run inside the `with` block on this pipeline; see compare.Trace."""
    from .compare import Trace

    return Trace(pipe)


class _CallablePackage(types.ModuleType):
    def __call__(self, pipe):
        return trace(pipe)


sys.modules[__name__].__class__ = _CallablePackage
