"""Scenario files: the schema, each error path, the ready lessons, and the event helpers."""

from __future__ import annotations

import numpy as np
import pytest

from stepviz.engine.checks import StepvizInputError
from stepviz.lessons.events import apply_events, due_events
from stepviz.run.lesson_file import load_scenario
from stepviz.lessons.shipped import LESSONS_FOLDER, ScenarioError, list_scenarios
from stepviz.run.settings import Event, RunSettings

GOOD = '''
title = "t"
description = "d"
model = "toy"
mode = "txt2img"
prompt = "a red circle on a black background"
negative_prompt = ""
seed = 1
steps = 10
guidance_scale = 7
scheduler = "ddim"
height = 64
width = 64

[[events]]
at_step = 0
note = "start"
pause = true

[[events]]
at_step = 5
set_guidance_scale = 1.0
set_scheduler = "euler"

[[compare]]
label = "g15"
guidance_scale = 15
'''


def write(tmp_path, text, name="lesson.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_gives_settings_events_and_branches(tmp_path):
    settings = load_scenario(write(tmp_path, GOOD))
    assert (settings.title, settings.steps, settings.guidance_scale, settings.height) == ("t", 10, 7.0, 64)
    assert isinstance(settings.guidance_scale, float)
    assert settings.events == [Event(0, note="start", pause=True), Event(5, set_guidance_scale=1.0,
                                                                         set_scheduler="euler")]
    assert settings.compare[0].label == "g15" and settings.compare[0].overrides == {"guidance_scale": 15.0}
    assert settings.source.endswith("lesson.toml")


@pytest.mark.parametrize("text, key, words", [
    ("colour = 'red'\n", "colour", "unknown key"),
    ("steps = 0\n", "steps", ">= 1"),
    ("steps = 'ten'\n", "steps", "integer >= 1"),
    ("steps = true\n", "steps", "integer"),
    ("guidance_scale = nan\n", "guidance_scale", "finite"),
    ("guidance_scale = 'high'\n", "guidance_scale", "finite number"),
    ("height = 30\n", "height", "multiple of 8"),
    ("strength = 1.5\n", "strength", "[0, 1]"),
    ("seed = -1\n", "seed", "2**63"),
    ("mode = 'video'\n", "mode", "txt2img"),
    ("scheduler = 'fast'\n", "scheduler", "ddim"),
    ("image = 'missing.png'\n", "image", "no such file"),
    ("image = { toy_scene = 'a pink circle on a black background' }\n", "image", "unknown word"),
    ("image = { toy_scene = 'a red circle on a black background', colour = 1 }\n", "image", "unknown key colour"),
    ("image = { seed = 1 }\n", "image", "toy_scene is missing"),
    ("image = { toy_scene = 'a red circle on a black background', layer = 'x' }\n", "image", "layers"),
    ("image = { toy_scene = 'a red circle on a black background', size = 30 }\n", "image", "multiple of 8"),
    ("image = 3\n", "image", "path relative"),
    ("depth_map = 'far.png'\n", "depth_map", "no such file"),
    ("[[events]]\nnote = 'x'\n", "at_step", "is missing"),
    ("[[events]]\nat_step = 99\nnote = 'x'\n", "at_step", "0..24"),
    ("[[events]]\nat_step = 1\n", "at_step", "does nothing"),
    ("[[events]]\nat_step = 1\nset_scheduler = 'fast'\n", "set_scheduler", "unknown"),
    ("[[events]]\nat_step = 1\nset_guidance_scale = inf\n", "set_guidance_scale", "finite"),
    ("[[events]]\nat_step = 1\npause = 'yes'\n", "pause", "true or false"),
    ("[[events]]\nat_step = 1\nwait = true\n", "wait", "unknown key"),
    ("[[compare]]\nlabel = 'x'\n", "label", "changes nothing"),
    ("[[compare]]\nlabel = 'x'\nsteps = 0\n", "steps", ">= 1"),
    ("[[compare]]\nlabel = 'x'\ntitle = 'y'\n", "title", "unknown key"),
    ("events = 3\n", "events", "array of tables"),
    ("".join(f"[[compare]]\nlabel = 'g{n}'\nguidance_scale = {n}\n" for n in range(1, 9)), "compare", "at most 7"),
])
def test_each_error_names_file_key_and_rule(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert str(path) in message and key in message and words in message, message
    assert "\n" not in message


@pytest.mark.parametrize("key, value, settings_key, rule", [
    ("scheduler", "'fast'", "scheduler", "'fast' is unknown: allowed schedulers are ddim, ddpm"),
    ("mode", "'video'", "mode", "'video' is unknown: allowed modes are txt2img, img2img, inpaint, depth2img"),
    ("inpaint_noise", "'loud'", "inpaint_noise", "'loud' is unknown: allowed values are fixed, fresh"),
    ("timestep_spacing", "'odd'", "timestep_spacing", "'odd' is unknown: allowed values are leading, trailing"),
])
def test_a_lesson_and_the_command_line_refuse_a_name_in_the_same_words(tmp_path, key, value, settings_key, rule):
    """One rule, one wording: the lesson file adds its name, key and line; RunSettings (the CLI) says key=value."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, f"{key} = {value}\n"))
    assert f"lesson.toml: {key} (line 1): {rule}" in str(caught.value)
    with pytest.raises(StepvizInputError) as refused:
        RunSettings(**{settings_key: value.strip("'")}).validate()
    assert str(refused.value).startswith(f"{settings_key}={rule}")


def test_an_event_names_an_unknown_scheduler_as_the_run_does(tmp_path):
    with pytest.raises(ScenarioError, match=r"set_scheduler \(line 3\): 'fast' is unknown: allowed schedulers are "):
        load_scenario(write(tmp_path, "[[events]]\nat_step = 1\nset_scheduler = 'fast'\n"))
    with pytest.raises(StepvizInputError, match=r"^event at step 1: set_scheduler='fast' is unknown: allowed sched"):
        RunSettings(events=[Event(1, set_scheduler="fast")]).validate()


def test_errors_give_the_line_of_the_key(tmp_path):
    path = write(tmp_path, "title = 'x'\n\n[[events]]\nat_step = 0\nnote = 'a'\n\n[[events]]\nat_step = 1\n"
                           "set_guidance_scale = 'big'\n")
    with pytest.raises(ScenarioError, match=r"\[\[events\]\] #2: set_guidance_scale \(line 9\)"):
        load_scenario(path)


def test_toml_syntax_errors_name_the_file_and_line(tmp_path):
    path = write(tmp_path, "title = 'x'\nsteps = = 3\n")
    with pytest.raises(ScenarioError, match=r"lesson.toml: not valid TOML: .*line 2"):
        load_scenario(path)


def test_scenario_errors_are_input_errors_the_cli_reports():
    assert issubclass(ScenarioError, StepvizInputError)


def test_image_paths_are_relative_to_the_file(tmp_path):
    from PIL import Image

    (tmp_path / "pics").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "pics" / "in.png")
    lesson = tmp_path / "sub"
    lesson.mkdir()
    settings = load_scenario(write(lesson, "mode = 'img2img'\nimage = '../pics/in.png'\n"))
    assert settings.image == str(lesson / "../pics/in.png")


def test_toy_scenes_draw_the_picture_and_its_mask(tmp_path):
    settings = load_scenario(write(tmp_path, "mode = 'inpaint'\n"
                                             "image = { toy_scene = 'a red square on a white background', seed = 5 }\n"
                                             "mask_image = { toy_scene = 'a red square on a white background', "
                                             "seed = 5, layer = 'mask', size = 32 }\n"))
    assert settings.image.size == (64, 64) and settings.image.mode == "RGB"
    assert settings.mask_image.size == (32, 32) and set(np.unique(np.asarray(settings.mask_image))) == {0, 255}
    assert "toy scene" in settings.image.info["stepviz_source"]


def test_a_box_layer_is_a_hole_of_whole_latent_cells_around_the_shape(tmp_path):
    settings = load_scenario(write(tmp_path, "mode = 'inpaint'\n"
                                             "image = { toy_scene = 'a red square on a white background', seed = 5 }\n"
                                             "mask_image = { toy_scene = 'a red square on a white background', "
                                             "seed = 5, layer = 'box' }\n"))
    hole = np.asarray(settings.mask_image) > 0
    shape = np.asarray(settings.image)[..., 1] < 128  # the red square: little green
    assert hole[shape].all() and hole.sum() > shape.sum()
    ys, xs = np.nonzero(hole)
    assert {ys.min() % 8, xs.min() % 8, (ys.max() + 1) % 8, (xs.max() + 1) % 8} == {0}


def test_unknown_lesson_name_lists_the_ready_ones():
    with pytest.raises(ScenarioError, match="guidance"):
        load_scenario("no-such-lesson")


def test_every_ready_lesson_loads_by_bare_name_and_has_notes():
    listed = list_scenarios()
    names = [name for name, _ in listed]
    assert {"loop-anatomy", "guidance", "schedulers", "img2img-strength", "inpaint-blend"} <= set(names)
    for name, line in listed:
        settings = load_scenario(name)
        assert settings.title and line == settings.description.strip().split("\n")[0] and len(line) <= 100
        assert any(event.note for event in settings.events), name
        assert settings.source == str(LESSONS_FOLDER / f"{name}.toml")


def test_the_lessons_folder_ships_inside_the_package():
    import stepviz

    assert LESSONS_FOLDER.parent == __import__("pathlib").Path(stepviz.__file__).resolve().parent


def test_due_events_match_the_steps_taken():
    events = [Event(0, note="a"), Event(2, set_guidance_scale=1.0), Event(2, note="b")]
    assert due_events(events, 0) == [events[0]]
    assert due_events(events, 2) == events[1:]
    assert due_events(events, 1) == []


def test_apply_events_changes_guidance_and_scheduler(tiny_pipe):
    from stepviz.engine import Stepper

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=4, height=32, width=32, scheduler="ddim")
    events = [Event(1, set_guidance_scale=2.0, note="lower"), Event(2, set_scheduler="euler")]
    seen = []
    while not stepper.done:
        seen += apply_events(stepper, events)
        stepper.step()
    assert seen == events
    assert [r.guidance_scale for r in stepper.records] == [7.5, 2.0, 2.0, 2.0]
    assert [r.scheduler for r in stepper.records][-1] == "euler"
    assert [e.action for e in stepper.log] == ["set_guidance_scale", "set_scheduler"]


def test_events_due_once_the_run_is_done_keep_their_note_and_change_nothing(tiny_pipe):
    """One rule for every front end: at the end there is no step left to change, so a due event's guidance
    or scheduler change is skipped, but the event is returned so its note still shows."""
    from stepviz.engine import Stepper
    from stepviz.run.session import MAIN, RunSession
    from stepviz.run.settings import RunSettings

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=2, height=32, width=32, scheduler="ddim")
    stepper.step(), stepper.step()
    assert stepper.done
    events = [Event(2, set_guidance_scale=1.0, set_scheduler="euler", note="the end")]
    assert apply_events(stepper, events) == events
    session = RunSession(RunSettings(events=events), tiny_pipe)
    session.adopt(stepper)
    assert session.due_events(MAIN) == events  # the TUI and the notebook: the same answer
    assert stepper.log == [] and stepper.guidance_scale == 7.5 and stepper.scheduler_name == "ddim"


def test_depth_maps_become_float_tensors(tmp_path):
    from PIL import Image

    Image.new("L", (16, 8), 255).save(tmp_path / "near.png")
    settings = load_scenario(write(tmp_path, "mode = 'depth2img'\ndepth_map = 'near.png'\n"))
    assert tuple(settings.depth_map.shape) == (1, 8, 16) and float(settings.depth_map.max()) == 1.0
    drawn = load_scenario(write(tmp_path, "depth_map = { toy_scene = 'a red circle on a black background' }\n"))
    assert tuple(drawn.depth_map.shape) == (1, 64, 64)
    assert 0.0 < float(drawn.depth_map.min()) < 0.5 < float(drawn.depth_map.max()) <= 1.0


def test_the_public_api_loads_a_lesson_by_its_name():
    import stepviz

    assert stepviz.load_lesson is stepviz.load_scenario  # the earlier name still works
    settings = stepviz.load_lesson("guidance")
    assert settings.title and settings.events and settings.source.endswith("guidance.toml")
