"""`stepviz grid`: the checker's counts over seeds x guidance scales, loaded with the run's own device, dtype and
variant, with a progress bar only on a terminal."""

from __future__ import annotations

import json

import stepviz.models
from stepviz.cli import main


def test_grid_loads_with_the_runs_device_dtype_and_variant(tmp_path, monkeypatch, capsys):
    asked = []
    real = stepviz.models.load_pipeline

    def recording(model, **kwargs):
        asked.append(kwargs)
        return real(model, **kwargs)

    monkeypatch.setattr(stepviz.models, "load_pipeline", recording)
    out = tmp_path / "grid"
    code = main(["grid", "--prompt", "a red circle on a black background", "--seeds", "1", "--scales", "1,7.5",
                 "--steps", "2", "--device", "cpu", "--dtype", "float32", "--out", str(out)])
    assert code == 0
    assert asked and asked[0]["device"] == "cpu" and asked[0]["dtype"] == "float32" and "variant" in asked[0]
    summary = json.loads((out / "counts.json").read_text())
    assert summary["seeds"] == [0] and [row["guidance_scale"] for row in summary["counts"]] == [1.0, 7.5]
    err = capsys.readouterr().err
    assert "it/s" not in err and "run/s" not in err and "s/run" not in err  # no bar when not a terminal
