"""What the user reads: the model's prediction named as the TUI names it in every export file, loading notices
on the terminal one line each, diffusers' deprecation warnings kept off it, a missing GPU refused before the
TUI opens."""

from __future__ import annotations

import csv
import json

import diffusers
import pytest
from parity_cases import OLD
from tiny import tiny_components

from stepviz.cli import main
from stepviz.engine.pipeline_facts import facts_of
from stepviz.models import load_pipeline


@pytest.fixture(scope="module")
def old_config_dir(tmp_path_factory):
    """A tiny model saved with a scheduler config from before steps_offset and clip_sample (DDIM)."""
    folder = tmp_path_factory.mktemp("old-config")
    parts = tiny_components()
    parts["scheduler"] = diffusers.DDIMScheduler.from_config(OLD)
    diffusers.StableDiffusionPipeline(**parts).save_pretrained(folder, safe_serialization=True)
    config = folder / "scheduler" / "scheduler_config.json"  # as the old file was written: without those keys
    written = json.loads(config.read_text())
    config.write_text(json.dumps({k: v for k, v in written.items() if k not in ("steps_offset", "clip_sample")}))
    return folder


def test_an_outdated_config_is_one_notice_and_no_warning(old_config_dir, capfd):
    pipe = load_pipeline(old_config_dir, device="cpu")
    err = capfd.readouterr().err
    assert "FutureWarning" not in err and "is outdated" not in err
    assert ("the scheduler config is outdated: the pipeline set steps_offset to 1, clip_sample to False, as "
            "diffusers' constructor does") in facts_of(pipe).notices
    assert pipe.scheduler.config.steps_offset == 1 and pipe.scheduler.config.clip_sample is False


def test_export_prints_each_notice_in_one_line_and_records_the_config_that_ran(old_config_dir, tmp_path, capfd):
    code = main(["export", "--model", str(old_config_dir), "--out", str(tmp_path / "out"), "--steps", "2",
                 "--height", "32", "--width", "32", "--preview", "channels", "--prompt", "a red circle"])
    err = capfd.readouterr().err
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("stepviz: note:")]
    assert any("the pipeline set steps_offset to 1, clip_sample to False" in line for line in notes), err
    assert "FutureWarning" not in err and '"_class_name"' not in err  # no config dumped on the terminal
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ran = manifest["scheduler_configs"][0]["config"]
    assert ran["steps_offset"] == 1 and ran["clip_sample"] is False and "_use_default_values" not in ran
    assert manifest["settings"]["guidance_scale"] == 7.5  # none given: the SD pipeline's default, as it ran


def test_a_v_model_is_named_v_in_the_manifest_metrics_and_page(tmp_path):
    from stepviz.export.run_export import export_run
    from stepviz.run.settings import RunSettings

    pipe = diffusers.StableDiffusionPipeline(**tiny_components(prediction_type="v_prediction", sd2=True))
    settings = RunSettings(model="tiny-v", steps=2, height=32, width=32, guidance_scale=1.0)
    out = export_run(settings, tmp_path / "out", kind="channels", pipe=pipe)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["predicts"] == "v" and manifest["model"]["prediction_type"] == "v_prediction"
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["predicts"] for row in rows} == {"v"}
    assert {row["noise_pred_from"] for row in rows} == {"text"}  # s = 1: the prompt's prediction alone
    handout = (out / "handout.html").read_text()
    assert "predicts v," in handout and "|v_t-v_u|" in handout and "predicts v_prediction" not in handout
    page = (out / "index.html").read_text()
    assert "predicts v," in page and "predicts v_prediction" not in page


def test_tui_with_a_missing_gpu_is_one_line_and_exit_2_before_the_window(monkeypatch, capsys):
    import torch

    import stepviz.tui.app as app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(app, "run_app", lambda *a, **k: pytest.fail("the TUI window opened"))
    assert main(["tui", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stepviz: error: device='cuda' is not available")
