"""The notebook face: every control of the widget driven headless (its events in Python), the lesson
notes and pauses, code edits followed, the export replayed, and the layering (no one imports it)."""

from __future__ import annotations

import ast
import html
import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from stepviz.notebook import Debugger  # noqa: E402
from stepviz.notebook.panels import png  # noqa: E402
from stepviz.render.step_pictures import step_pictures  # noqa: E402

PROMPT = "a red circle on a black background"


@pytest.fixture
def debugger(tiny_pipe):
    made = Debugger(tiny_pipe, prompt=PROMPT, num_inference_steps=4, seed=3, guidance_scale=7.5, scheduler="ddim",
                    kind="approx")
    assert made.wait()
    yield made
    made.close()


def press(debugger, control) -> None:
    control.click()
    assert debugger.wait()


def choose(debugger, control, value) -> None:
    control.value = value
    assert debugger.wait()


def status(debugger) -> str:
    return debugger.panels.status.value


def error(debugger) -> str:
    return html.unescape(debugger.panels.error.value)


def expected_png(debugger, record, kind: str, role: str = "x_t") -> bytes:
    return png(step_pictures(debugger.session.pipe, record, kind)[role])


def test_step_shows_the_step_with_the_shared_pictures_and_plots(debugger):
    p = debugger.panels
    assert "step 0/4" in status(debugger) and p.x_t.value  # the starting noise
    assert p.schedule_plot.value == b""
    press(debugger, p.step)
    record = debugger.stepper.records[-1]
    assert len(debugger.stepper.records) == 1 and "step 1/4" in status(debugger)
    assert p.x_t.value == expected_png(debugger, record, "approx")
    assert p.x0.value == expected_png(debugger, record, "approx", "x0")
    assert bytes(p.schedule_plot.value).startswith(b"\x89PNG") and bytes(p.norms_plot.value).startswith(b"\x89PNG")
    assert f"{record.norm_guidance:.2f} rms" in p.guidance_numbers.value  # readouts.guidance_text, as in the TUI
    assert "tokens:ids" in p.prompt.value and "red" in p.prompt.value
    assert (p.timeline.max, p.timeline.value) == (1, 1)


def test_preview_kind_toggle_redraws_in_that_kind(debugger):
    p = debugger.panels
    press(debugger, p.step)
    before = p.x_t.value
    choose(debugger, p.kind, "channels")
    record = debugger.stepper.records[-1]
    assert p.x_t.value == expected_png(debugger, record, "channels") != before
    choose(debugger, p.kind, "full")
    assert p.x0.value == expected_png(debugger, record, "full", "x0")


def test_guidance_input_applies_from_the_next_step_with_the_engine_checks(debugger):
    p = debugger.panels
    press(debugger, p.step)
    p.guidance.value = "lots"
    press(debugger, p.apply_guidance)
    assert "guidance_scale='lots' is not allowed: it must be a finite number" in error(debugger)
    assert debugger.stepper.guidance_scale == 7.5
    p.guidance.value = "2.5"
    press(debugger, p.apply_guidance)
    assert p.error.value == "" and debugger.stepper.guidance_scale == 2.5
    press(debugger, p.step)
    assert [r.guidance_scale for r in debugger.stepper.records] == [7.5, 2.5]
    assert "guidance scale 2.5 from the next step on" in p.notes.value


def test_scheduler_menu_swaps_from_the_next_step_and_refuses_when_finished(debugger):
    p = debugger.panels
    press(debugger, p.step)
    choose(debugger, p.scheduler, "euler")
    assert debugger.stepper.scheduler_name == "euler"
    press(debugger, p.play)
    assert [r.scheduler for r in debugger.stepper.records] == ["ddim", "euler", "euler", "euler"]
    assert "finished" in status(debugger)
    choose(debugger, p.scheduler, "ddim")
    assert "the run is finished: rewind first" in error(debugger)
    assert p.scheduler.value == "euler"  # the menu shows what the run uses


def test_play_to_the_end_then_step_says_finished(debugger):
    p = debugger.panels
    press(debugger, p.play)
    assert debugger.stepper.done and "step 4/4" in status(debugger) and "finished" in status(debugger)
    press(debugger, p.step)
    assert "the run is finished" in error(debugger)


def test_timeline_looks_back_and_rewind_goes_on_from_there(debugger):
    p = debugger.panels
    press(debugger, p.play)
    first = debugger.stepper.records[0]
    choose(debugger, p.timeline, 1)
    assert "step 1/4" in status(debugger) and "looking back (4 taken)" in status(debugger)
    assert p.x_t.value == expected_png(debugger, first, "approx")
    choose(debugger, p.timeline, 0)
    assert "looking at the start" in status(debugger)
    choose(debugger, p.timeline, 2)
    press(debugger, p.rewind)
    assert len(debugger.stepper.records) == 2 and "rewound to step 2" in p.notes.value
    assert (p.timeline.max, p.timeline.value) == (2, 2)
    press(debugger, p.rewind)  # looking at the latest step: nothing to drop
    assert "look at an earlier step first" in error(debugger)


def test_fork_compares_and_the_branch_choice_steps_either(debugger):
    p = debugger.panels
    press(debugger, p.step)
    assert p.compare_box.layout.display == "none"
    press(debugger, p.fork)
    assert debugger.session.has("fork") and p.compare_box.layout.display is None
    assert p.branch.layout.display is None
    choose(debugger, p.branch, "fork")
    press(debugger, p.step)
    main, fork = debugger.session.steppers["main"], debugger.session.steppers["fork"]
    assert (len(main.records), len(fork.records)) == (1, 2)
    fork_status, fork_x_t, _ = p.compare_views["fork"]
    assert "step 2/4" in fork_status.value and fork_x_t.value == png(
        step_pictures(debugger.session.pipe, fork.records[-1], "approx")["x_t"], 192)
    choose(debugger, p.branch, "both")
    p.guidance.value = "1"
    press(debugger, p.apply_guidance)
    assert main.guidance_scale == fork.guidance_scale == 1.0


def test_code_edits_are_followed(debugger):
    p = debugger.panels
    debugger.stepper.set_guidance_scale(3)
    debugger.stepper.step()
    debugger.refresh()  # in IPython this runs after every cell by itself
    assert debugger.wait()
    assert p.guidance.value == "3" and "step 1/4" in status(debugger) and "guidance 3" in status(debugger)
    debugger.refresh()  # nothing changed: no redraw asked
    assert not debugger._redraw_due


def test_export_writes_the_handout_of_the_run_as_stepped(debugger, tmp_path):
    p = debugger.panels
    press(debugger, p.step)
    p.guidance.value = "2"
    press(debugger, p.apply_guidance)
    choose(debugger, p.scheduler, "euler")
    press(debugger, p.play)
    p.export_folder.value = str(tmp_path / "handout")
    press(debugger, p.export)
    assert p.error.value == ""
    folder = tmp_path / "handout"
    assert (folder / "index.html").is_file() and (folder / "strip.png").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    live = debugger.stepper.records
    assert [m["guidance_scale"] for m in metrics] == [r.guidance_scale for r in live] == [7.5, 2, 2, 2]
    assert [m["scheduler"] for m in metrics] == [r.scheduler for r in live]
    assert [m["latents_std"] for m in metrics] == pytest.approx([r.latents_std for r in live], rel=1e-5)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(e["at_step"], e["set_guidance_scale"], e["set_scheduler"]) for e in manifest["events"]] == \
        [(1, 2.0, None), (1, None, "euler")]
    press(debugger, p.export)  # the folder is there now: refused unless "replace" is ticked
    assert "exists and is not empty" in error(debugger)
    p.export_replace.value = True
    press(debugger, p.export)
    assert p.error.value == ""


def test_export_refuses_a_run_it_cannot_replay(tiny_pipe, tmp_path):
    from stepviz import Stepper

    made = Debugger(Stepper(tiny_pipe, prompt=PROMPT, num_inference_steps=2, seed=None), kind="approx")
    made.export(tmp_path / "out")
    assert made.wait()
    assert "export: the run has no seed" in error(made) and not (tmp_path / "out").exists()
    made.close()


def test_buttons_answer_while_a_step_computes(debugger, monkeypatch):
    """The model works on the engine thread: clicks return at once; pause stops play after the step."""
    unet = debugger.session.pipe.unet
    gate, entered = threading.Event(), threading.Event()
    original = type(unet).forward

    def slow_forward(self, *args, **kwargs):
        entered.set()
        assert gate.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(unet), "forward", slow_forward)
    p = debugger.panels
    try:
        p.play.click()
        assert entered.wait(30) and debugger.engine.running.is_set()
        assert "playing" in p.busy.value
        started = time.monotonic()
        p.kind.value = "channels"
        p.timeline.value = 0
        p.pause.click()
        assert time.monotonic() - started < 0.5  # answered while the UNet is still held
        assert debugger.stepper.records == []
    finally:
        gate.set()
    assert debugger.wait()
    assert len(debugger.stepper.records) == 1  # the step in progress finished, then play stopped
    assert "paused" in p.notes.value and p.busy.value == ""


def test_lesson_notes_shown_whole_and_pauses_stop_play(tiny_pipe):
    made = Debugger.from_lesson("guidance", pipe=tiny_pipe, kind="approx")
    assert made.wait()
    p = made.panels
    assert "What classifier-free guidance does" in p.header.value
    assert "guidance multiplies it by s." in p.notes.value  # the at_step 0 note, whole
    press(made, p.play)
    assert len(made.stepper.records) == 12  # paused by the lesson at step 12, guidance off from there
    assert made.stepper.guidance_scale == 1.0 and "paused by the lesson" in p.notes.value
    assert "Does this run still change once guidance is off?" in p.notes.value
    made.close()


def test_a_lesson_shows_the_runs_its_notes_compare_at_the_step_shown(tiny_pipe):
    made = Debugger.from_lesson("guidance", pipe=tiny_pipe, kind="approx")
    assert made.wait()
    p = made.panels
    labels = ["guidance 1", "guidance 7.5", "guidance 15"]
    assert p.lesson_box.layout.display is None and len(p.lesson_views) == 3
    assert [html.unescape(v[0].value).split("</b>")[0].removeprefix("<b>") for v in p.lesson_views.values()] == labels
    made.step(3)
    assert made.wait()
    for name, (caption, _, x0) in p.lesson_views.items():
        assert ": step 3 of " in caption.value
        run = made.session.view(name)
        picture = step_pictures(made.session.pipe, run.records[2], "approx")["x0"]
        assert len(run.records) == 3 and bytes(x0.value) == png(picture, 160)
    s1 = made.session.view("compare-1").records[2]
    assert s1.guidance_scale == 1.0 and made.stepper.records[2].guidance_scale == 7.5
    made.look(1)
    assert made.wait()
    assert all(": step 1 of " in v[0].value for v in p.lesson_views.values())  # they follow the step looked at
    made.close()


def test_inpaint_shows_the_blend_and_the_inpainting_model_its_channels():
    from tiny import scene_image, square_mask, tiny_pipeline

    blend = Debugger(tiny_pipeline(), prompt=PROMPT, mode="inpaint", image=scene_image(), mask_image=square_mask(),
                     num_inference_steps=2, seed=0, kind="approx")
    press(blend, blend.panels.step)
    assert blend.panels.blend_box.layout.display is None
    assert all(image.value for image in blend.panels.blend.values())
    assert blend.panels.extra_box.layout.display == "none"
    blend.close()
    model = Debugger(tiny_pipeline("StableDiffusionInpaintPipeline", unet_in_channels=9), prompt=PROMPT,
                     mode="inpaint", image=scene_image(), mask_image=square_mask(), num_inference_steps=2, seed=0,
                     kind="approx")
    press(model, model.panels.step)
    assert model.panels.extra_box.layout.display is None and model.panels.extra.value
    assert model.panels.blend_box.layout.display == "none"
    model.close()


def test_nothing_imports_the_notebook_and_it_imports_no_tui():
    package = Path(__file__).resolve().parents[1] / "stepviz"
    for path in package.rglob("*.py"):
        inside = path.parent.name == "notebook"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                name = ("." * node.level) + (node.module or "")
                if inside:
                    assert "tui" not in name.split("."), f"{path} imports {name}"
                else:
                    assert "notebook" not in name.split("."), f"{path} imports {name}"


def test_an_unlisted_scheduler_joins_the_menu_and_export_asks_for_a_name(tiny_pipe, tmp_path):
    from diffusers import LCMScheduler

    made = Debugger(tiny_pipe, prompt=PROMPT, num_inference_steps=2, seed=0, kind="approx",
                    scheduler=LCMScheduler.from_config(tiny_pipe.scheduler.config))
    assert made.wait()
    assert made.panels.scheduler.value == "LCMScheduler" and "ddim" in made.panels.scheduler.options
    made.export(tmp_path / "out")
    assert made.wait() and "give its name" in error(made)
    made.close()


def test_an_unknown_preview_kind_is_refused_in_one_line(tiny_pipe):
    from stepviz import StepvizInputError

    with pytest.raises(StepvizInputError,
                       match=r"^kind='pretty' is unknown: allowed preview kinds are full, approx, channels$"):
        Debugger(tiny_pipe, prompt=PROMPT, kind="pretty")


def test_fork_starts_at_the_step_looked_at(debugger):
    p = debugger.panels
    press(debugger, p.play)
    choose(debugger, p.timeline, 2)
    press(debugger, p.fork)
    main, fork = debugger.session.steppers["main"], debugger.session.steppers["fork"]
    assert (len(main.records), len(fork.records)) == (4, 2) and "forked at step 2" in p.notes.value
    choose(debugger, p.branch, "fork")
    press(debugger, p.step)
    assert len(fork.records) == 3 and fork.records[2].latents.equal(main.records[2].latents)  # same run, no edit


def test_attention_maps_per_token_over_x0_hat(debugger):
    from stepviz.render.attention_pictures import overlay, token_labels

    p = debugger.panels
    assert p.attention_box.layout.display == "none"  # no step yet: no map
    press(debugger, p.step)
    record = debugger.stepper.records[-1]
    labels = token_labels(debugger.stepper.prompt_anatomy.tokens)
    assert p.attention_box.layout.display is None and list(p.attention_token.options) == labels
    assert p.attention_token.value == "a" and "share of each token" in p.attention_text.value
    x0 = debugger.drawing.attention_cache[1]
    expected = png(overlay(x0, record.cross_attention.float().cpu().numpy()[labels.index("red")]))
    choose(debugger, p.attention_token, "red")
    assert p.attention.value == expected


def test_the_notebook_run_where_it_lies_exports_into_the_users_folder(debugger, tmp_path, monkeypatch):
    """The shipped notebook's kernel starts in stepviz/lessons/: a relative handout folder goes to the home
    folder then, never into the installed package."""
    from stepviz.export.folder import PACKAGE_FOLDER

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(PACKAGE_FOLDER / "lessons")
    press(debugger, debugger.panels.step)
    folder = debugger.export("unit3-handout")
    debugger.wait(120)
    assert folder == home / "unit3-handout" and (folder / "index.html").is_file()
    assert not (PACKAGE_FOLDER / "lessons" / "unit3-handout").exists()


def test_an_export_into_the_installed_package_is_refused(tmp_path):
    from stepviz.cli import main
    from stepviz.export.folder import PACKAGE_FOLDER

    target = PACKAGE_FOLDER / "lessons" / "my-handout"
    assert main(["export", "--steps", "2", "--out", str(target)]) == 2
    assert not target.exists()
