"""stepviz: a step debugger for diffusion sampling loops.

    import stepviz
    pipe = stepviz.load_pipeline("toy")
    st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=42)
    rec = st.step()

Names load lazily so `stepviz --help` answers without importing torch.

The sub-packages are layers; each imports only from the layers before it on this line (imports inside
functions too), so no sub-package depends on one above it and none sits in a cycle:

    engine, toy <- models <- render, trace <- lessons <- run <- export <- tui, notebook <- cli

engine: the Stepper (torch and diffusers only; never textual); toy: the toy world's scenes and checker;
models: load_pipeline; render: latents to pictures and text; trace: a hand-written loop recorded and
compared; lessons: what a lesson is (events, claims, the shipped files); run: settings, lesson files,
the play loop, sessions, the shared engine; export: files on disk; tui, notebook: the front ends; cli:
the command line, which opens them. tests/test_layering.py reads the line above and checks it.
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
    "load_lesson": ("stepviz.run.lesson_file", "load_lesson"),
    "load_scenario": ("stepviz.run.lesson_file", "load_scenario"),
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
