"""stepviz: a step debugger for diffusion sampling loops.

    import stepviz
    pipe = stepviz.load_pipeline("toy")
    st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=42)
    rec = st.step()

Names load lazily so `stepviz --help` answers without importing torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_pipeline": ("stepviz.models", "load_pipeline"),
    "ModelLoadError": ("stepviz.models", "ModelLoadError"),
    "Stepper": ("stepviz.engine", "Stepper"),
    "StepRecord": ("stepviz.engine", "StepRecord"),
    "StepvizInputError": ("stepviz.engine", "StepvizInputError"),
    "NonFiniteError": ("stepviz.engine", "NonFiniteError"),
    "SCHEDULERS": ("stepviz.engine", "SCHEDULERS"),
    "load_scenario": ("stepviz.lessons.schema", "load_scenario"),
    "trace": ("stepviz.trace", "trace"),
    "SharedEngine": ("stepviz.run.shared_engine", "SharedEngine"),
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'stepviz' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
