"""stepviz in a notebook: the step debugger as a Jupyter / JupyterLab / VS Code / Colab widget.

    from stepviz.notebook import Debugger
    debugger = Debugger("toy", prompt="a red circle on a black background", num_inference_steps=20)
    debugger

Needs the `notebook` extra: pip install 'stepviz[notebook]'.
"""

try:
    import ipywidgets  # noqa: F401
except ImportError as exc:  # the core install and the TUI do without Jupyter
    raise ImportError("stepviz.notebook needs ipywidgets: pip install 'stepviz[notebook]'") from exc

from .debugger import Debugger

__all__ = ["Debugger"]
