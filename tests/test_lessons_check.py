"""`stepviz lessons check`: every ready lesson's claims hold on the shipped models; false claims fail."""

import textwrap

import pytest

from stepviz.cli import main
from stepviz.run.lesson_check import check_lesson, print_report
from stepviz.run.lesson_file import load_scenario
from stepviz.lessons.shipped import LESSONS_FOLDER, ScenarioError

READY = sorted(path.stem for path in LESSONS_FOLDER.glob("*.toml"))


@pytest.fixture(scope="module")
def reports():
    """Every ready lesson checked once (pipelines are shared between lessons)."""
    return {name: check_lesson(name) for name in READY}


@pytest.mark.parametrize("name", READY)
def test_ready_lesson_claims_hold(reports, name, capsys):
    report = reports[name]
    print_report(report)
    printed = capsys.readouterr().out
    assert len(report.results) >= 2, f"{name} checks fewer than 2 claims"
    assert report.passed, printed
    assert "FAIL" not in printed
    assert "Question for the class" in LESSONS_FOLDER.joinpath(f"{name}.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", READY)
def test_lower_bounds_sit_near_what_is_measured(reports, name):
    """A claim that a wrong model would pass too ("differs by > 10" measured 45) is no evidence."""
    loose = [(r.claim.describe(), r.value) for r in reports[name].results if r.claim.loose(r.value)]
    assert not loose


def test_the_report_prints_each_claims_margin(tmp_path, capsys):
    path = write_lesson(tmp_path, """
        [[events.expect]]
        metric = "timestep"
        above = 400
        below = 2000

        [[events.expect]]
        metric = "timestep"
        above = 1
        """)
    report = check_lesson(path)
    print_report(report)
    lines = [line for line in capsys.readouterr().out.splitlines() if "timestep" in line]
    t = report.results[0].value
    assert f"margin {t - 400:.3g} ({(t - 400) / 400:.0%} of the bound)" in lines[0] and "LOOSE" not in lines[0]
    assert "LOOSE: measured over 3x the lower bound" in lines[1]


def test_memory_and_size_claims_measure_and_a_refusal_is_checked(tmp_path, capsys):
    path = write_lesson(tmp_path, """
        [[events.expect]]
        metric = "unet_peak_mb_full_attention"
        above = 0.5

        [[events.expect]]
        metric = "sliced_picture_difference"
        below = 0.01

        [[events.expect]]
        metric = "latent_height"
        above = 7.5
        below = 8.5

        [[events.expect]]
        refused = { height = 500 }
        says = "multiple of 8"

        [[events.expect]]
        refused = { height = 512 }
        says = "multiple of 8"
        """)
    results = check_lesson(path).results
    assert [r.passed for r in results] == [True, True, True, True, False]
    assert results[0].value > 0.5 and results[1].value < 0.01 and results[4].measured == "accepted"


def test_guidance_gain_reads_back_the_scale_the_scheduler_got(tmp_path, monkeypatch):
    """The gain is measured from x_t and x0-hat, not the record's own CFG line: a loop that drops s fails it."""
    from stepviz.engine import guidance

    claims = """
        [[events.expect]]
        metric = "guidance_gain"
        above = 7.45
        below = 7.55

        [[events.expect]]
        picture = "x_t"
        step = 0
        metric = "x_t_std"
        above = 0.8
        below = 1.2
        """
    right = check_lesson(write_lesson(tmp_path, claims))
    assert [r.passed for r in right.results] == [True, True] and abs(right.results[0].value - 7.5) < 0.01
    monkeypatch.setattr(guidance, "combine", lambda uncond, text, scale: text)  # the prompt's prediction alone
    wrong = check_lesson(write_lesson(tmp_path, claims))
    assert not wrong.results[0].passed and abs(wrong.results[0].value - 1) < 0.01


def test_border_vs_renoised_finds_a_border_noised_otherwise(tmp_path, monkeypatch):
    from stepviz.engine.stepper import Stepper

    extra = """
        [[events.expect]]
        metric = "border_vs_renoised"
        below = 0.001
        """
    inpaint = """
        mode = "inpaint"
        image = { toy_scene = "a red square on a white background", seed = 1 }
        mask_image = { toy_scene = "a red square on a white background", seed = 1, layer = "box" }
        """
    path = write_lesson(tmp_path, "", extra)
    text = open(path, encoding="utf-8").read().replace('scheduler = "ddim"\n', 'scheduler = "ddim"\n'
                                                       + textwrap.dedent(inpaint))
    open(path, "w", encoding="utf-8").write(text)
    right = check_lesson(path).results[0]
    assert right.passed, right.measured
    blend_at_t = Stepper._noised_background  # a loop that re-noises the border to t instead of t_next

    def noised_at_t(self):
        self._loop_index -= 1
        try:
            return blend_at_t(self)
        finally:
            self._loop_index += 1
    monkeypatch.setattr(Stepper, "_noised_background", noised_at_t)
    wrong = check_lesson(path).results[0]
    assert not wrong.passed and wrong.value > 0.01


def write_lesson(tmp_path, claims: str, extra: str = "") -> str:
    path = tmp_path / "mine.toml"
    path.write_text(textwrap.dedent("""\
        title = "mine"
        model = "toy"
        prompt = "a yellow triangle on a black background"
        seed = 2
        steps = 4
        guidance_scale = 7.5
        scheduler = "ddim"

        [[events]]
        at_step = 2
        note = "a claim"
        """) + textwrap.dedent(claims) + textwrap.dedent(extra), encoding="utf-8")
    return str(path)


def test_a_false_claim_fails_with_what_was_measured(tmp_path, capsys):
    path = write_lesson(tmp_path, """
        [[events.expect]]
        step = "end"
        colour = "yellow"

        [[events.expect]]
        step = "end"
        colour = "blue"

        [[events.expect]]
        step = "end"
        metric = "steps_run"
        below = 3
        """)
    assert main(["lessons", "check", path]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "step   4" in line]
    assert lines[0].lstrip().startswith("pass") and "found: yellow" in lines[0]
    assert lines[1].lstrip().startswith("FAIL") and "colour blue" in lines[1] and "found: yellow" in lines[1]
    assert lines[2].lstrip().startswith("FAIL") and "steps_run = 4" in lines[2]
    assert "3 claims: 1 pass, 2 fail" in out


def test_claims_between_runs(tmp_path, capsys):
    path = write_lesson(tmp_path, """
        [[events.expect]]
        step = "end"
        run = "other seed"
        differs_from = "main"
        by_more_than = 5

        [[events.expect]]
        step = "end"
        run = "same seed"
        same_as = "main"
        within = 0.5
        """, """
        [[compare]]
        label = "other seed"
        seed = 3

        [[compare]]
        label = "same seed"
        guidance_scale = 7.5
        """)
    assert main(["lessons", "check", path]) == 0
    out = capsys.readouterr().out
    assert "same seed x0-hat same as main's within 0.5" in out and "mean |difference| 0.00" in out


@pytest.mark.parametrize("claim, words", [
    ('colour = "teal"', "colour (line 14): 'teal' is not allowed"),
    ('metric = "speed"\nabove = 1', "metric (line 14): 'speed' is unknown"),
    ('colours = "red"', "colours (line 14): unknown key"),
    ('run = "main"', "a claim needs exactly one of"),
    ('run = "elsewhere"\ncolour = "red"', "'elsewhere' is not a run of this lesson"),
    ('same_as = "main"', "compares 'main' with itself"),
    ('step = 0\ncolour = "red"', "there is no x0-hat before the first step"),
    ('metric = "sigma"', "needs above = N, below = N or both"),
])
def test_malformed_claims_are_refused_with_the_key(tmp_path, claim, words):
    path = write_lesson(tmp_path, "\n[[events.expect]]\n" + claim + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert words in str(info.value)


def test_check_of_a_missing_lesson_is_an_input_error(capsys):
    assert main(["lessons", "check", "no-such-lesson"]) == 2
    assert "scenario 'no-such-lesson' not found" in capsys.readouterr().err
