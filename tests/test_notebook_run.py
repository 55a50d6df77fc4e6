"""The shipped notebook (stepviz/lessons/unit3.ipynb) executed end to end by a Jupyter kernel on the toy
model, with few steps; then two cells of our own check that the widget follows a code edit by itself
(the IPython post_run_cell hook) and that the handout was written."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

NOTEBOOK = Path(__file__).resolve().parents[1] / "stepviz" / "lessons" / "unit3.ipynb"


def test_the_shipped_notebook_runs_on_the_toy_model(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "STEPS = 25" in parameters[0].source
    parameters[0].source = parameters[0].source.replace("STEPS = 25", "STEPS = 6")
    notebook.cells += [
        nbformat.v4.new_code_cell("debugger.stepper.rewind(3)\ndebugger.stepper.set_guidance_scale(4.5)"),
        nbformat.v4.new_code_cell(
            "debugger.wait()\n"
            "assert debugger.panels.guidance.value == '4.5', debugger.panels.guidance.value\n"
            "assert 'step 3/' in debugger.panels.status.value\n"
            "import json\n"
            "events = json.load(open('unit3-handout/manifest.json'))['events']\n"
            "print(sorted({(e['at_step'], e['set_guidance_scale'], e['set_scheduler']) for e in events}))"),
    ]
    # the kernel imports this checkout, with one torch thread (the machine is shared)
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # the kernel spec's "python" is this interpreter (jupyter_client swaps it for sys.executable)

    texts = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells]
    joined = "\n".join(texts)
    assert "UNet2DConditionModel" in joined and "VAE scaling factor" in joined
    assert "the formula gives the step's eps_hat: True" in joined
    assert "guidance scale per step: [7.5, 7.5, 1.0, 1.0]" in joined
    schedulers = ast.literal_eval(joined.split("scheduler per step: ", 1)[1].split("\n", 1)[0])
    own = schedulers[0]  # the toy pipeline's own scheduler, then Euler from step 5 on (set in code at step 4)
    assert own != "euler" and schedulers[:4] == [own] * 4 and set(schedulers[4:]) == {"euler"}
    assert (tmp_path / "unit3-handout" / "index.html").is_file()
    assert texts[-1].strip() == "[(2, 1.0, None), (4, None, 'euler')]"  # the edits made in code, replayed
    widgets = [o for cell in notebook.cells for o in cell.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 4  # the main debugger and three lessons
    stray = [o for cell in notebook.cells for o in cell.get("outputs", [])
             if "text/html" in o.get("data", {}) and "application/vnd.jupyter.widget-view+json" not in o["data"]]
    assert stray == []  # nothing the widget draws leaks out below it (Rich displays itself in a kernel)
