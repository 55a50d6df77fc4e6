"""Following code: the widget redraws after any notebook cell that changed the Stepper.

An IPython `post_run_cell` hook calls `debugger.refresh()`, which compares the Stepper with what it
last showed. The hook holds the debugger weakly and unregisters itself once the debugger is gone.
Outside IPython nothing is registered: call `debugger.refresh()`.
"""

from __future__ import annotations

import weakref


def redraw_after_cells(debugger) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    held = weakref.ref(debugger)

    def after_cell(result=None) -> None:
        alive = held()
        if alive is None:
            shell.events.unregister("post_run_cell", after_cell)
        else:
            alive.refresh()

    shell.events.register("post_run_cell", after_cell)
