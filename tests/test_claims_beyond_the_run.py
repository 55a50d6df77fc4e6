"""A claim counted over seeds and a claim on the model's config: they parse, hold on the shipped toy, and fail when
the count or the value written is not what the toy gives (counted here independently, with stepviz.Stepper)."""

import textwrap

import pytest

import stepviz
from stepviz.cli import main
from stepviz.lessons.claims import ClaimFormError, parse_claim
from stepviz.lessons.shipped import ScenarioError
from stepviz.run.lesson_check import check_lesson, pipeline, print_report
from stepviz.run.lesson_file import load_lesson
from stepviz.toy.checker import classify

PROMPT = "a yellow triangle on a black background"
SEEDS = (0, 1, 2)
STEPS = 4


def write_lesson(tmp_path, claims: str) -> str:
    path = tmp_path / "counted.toml"
    path.write_text(textwrap.dedent(f"""\
        title = "counted"
        model = "toy"
        prompt = "{PROMPT}"
        seed = 2
        steps = {STEPS}
        guidance_scale = 7.5
        scheduler = "ddim"
        """) + textwrap.dedent(claims) + textwrap.dedent("""
        [[events]]
        at_step = 2
        note = "a claim"

        [[events.expect]]
        colour = ["yellow", "orange", "red", "green", "blue", "purple"]

        [[compare]]
        label = "guidance 1"
        guidance_scale = 1.0
        """), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def found_at_seed():
    """seed -> (colour, shape) the checker finds in the final picture at guidance 1 and 7.5, by Stepper alone."""
    found = {}
    for scale in (1.0, 7.5):
        for seed in SEEDS:
            stepper = stepviz.Stepper(pipeline("toy"), prompt=PROMPT, seed=seed, num_inference_steps=STEPS,
                                      guidance_scale=scale, scheduler="ddim")
            stepper.run()
            found[scale, seed] = classify(stepper.image())[:2]
    return found


def test_count_claims_parse():
    claim = parse_claim({"seeds": "0-2", "run": "guidance 1", "picture": "x_t", "colour": "yellow", "count": 2},
                        "end")
    assert (claim.kind, claim.seeds, claim.at_least, claim.at_most, claim.run) == ("seeds", (0, 1, 2), 2, 2,
                                                                                 "guidance 1")
    assert claim.per_seed.kind == "sees" and claim.per_seed.sees == {"colour": ("yellow",)}
    ranged = parse_claim({"seeds": [4, 9], "differs_from": "x", "by_more_than": 3, "at_least": 1,
                          "overrides": {"guidance_scale": 3}}, 5)
    assert ranged.seeds == (4, 9) and ranged.at_most is None and ranged.overrides == (("guidance_scale", 3.0),)
    assert ranged.describe() == "seeds 4, 9, guidance_scale=3.0: main x0-hat differs from x's by > 3, at >= 1 of 2"
    config = parse_claim({"config": "vae.scaling_factor", "equals": 1.0}, 0)
    assert config.kind == "config" and config.describe() == "main's model: vae.scaling_factor = 1.0"


@pytest.mark.parametrize("table, key, words", [
    ({"seeds": "7-0", "colour": "red", "count": 1}, "seeds", "\"FIRST-LAST\""),
    ({"seeds": "0-3", "colour": "red", "count": 5}, "count", "a number of seeds in 0..4"),
    ({"seeds": "0-3", "colour": "red"}, "seeds", "needs count = N"),
    ({"seeds": "0-3", "colour": "red", "count": 1, "at_least": 1}, "count", "count = N alone"),
    ({"seeds": "0-3", "colour": "red", "at_least": 3, "at_most": 1}, "at_least", "above at_most"),
    ({"count": 2, "colour": "red"}, "count", "add seeds"),
    ({"seeds": "0-3", "colour": "red", "count": 1, "overrides": {"seed": 4}}, "overrides", "guidance_scale"),
    ({"seeds": "0-3", "trace": "course-loop", "first_divergence": "none", "count": 1}, "seeds", "not a trace"),
    ({"config": "vae.scaling_factor"}, "config", "needs equals"),
    ({"config": "scaling_factor", "equals": 1}, "config", "component.key"),
    ({"config": "vae.scaling_factor", "equals": 1, "above": 0}, "above", "config, equals, run and say only"),
])
def test_malformed_count_and_config_claims_are_refused_with_the_key(table, key, words):
    with pytest.raises(ClaimFormError) as info:
        parse_claim(table, "end")
    assert info.value.key == key and words in str(info.value)


def test_a_count_over_seeds_is_the_checker_s_count_and_a_wrong_count_fails(tmp_path, found_at_seed, capsys):
    yellow = sum(found_at_seed[1.0, seed][0] == "yellow" for seed in SEEDS)
    triangles = sum(found_at_seed[7.5, seed][1] == "triangle" for seed in SEEDS)
    one_too_few = f"at_most = {triangles - 1}" if triangles else "at_least = 1"
    claims = f"""
        [[expect]]
        seeds = "0-2"
        run = "guidance 1"
        picture = "x_t"
        colour = "yellow"
        count = {yellow}

        [[expect]]
        seeds = "0-2"
        picture = "x_t"
        colour = "yellow"
        overrides = {{ guidance_scale = 1.0 }}
        count = {yellow}
        say = "the main run with s = 1 is the guidance 1 run"

        [[expect]]
        seeds = "0-2"
        picture = "x_t"
        shape = "triangle"
        at_least = {triangles}

        [[expect]]
        seeds = "0-2"
        run = "guidance 1"
        picture = "x_t"
        colour = "yellow"
        count = {(yellow + 1) % 4}

        [[expect]]
        seeds = "0-2"
        picture = "x_t"
        shape = "triangle"
        {one_too_few}
        """
    report = check_lesson(write_lesson(tmp_path, claims))
    print_report(report)
    out = capsys.readouterr().out
    assert [r.passed for r in report.results] == [True, True, True, False, False, True]
    assert [r.value for r in report.results[:5]] == [yellow, yellow, triangles, yellow, triangles]
    assert f"holds at {yellow} of 3" in out and "margin 0 seeds" in out and "margin -1 seed" in out
    assert report.runs_played == 1 + 3 * 3  # the main run; seeds 0-2 of guidance 1, of main, of main at s = 1


def test_a_config_claim_reads_the_shipped_model_and_a_wrong_value_fails(tmp_path, capsys):
    pipe = pipeline("toy")
    factor, channels = pipe.vae.config.scaling_factor, list(pipe.unet.config.block_out_channels)
    claims = f"""
        [[expect]]
        config = "vae.scaling_factor"
        equals = {factor}

        [[expect]]
        config = "unet.block_out_channels"
        equals = {channels}

        [[expect]]
        config = "tokenizer.model_max_length"
        equals = 77

        [[expect]]
        config = "vae.scaling_factor"
        equals = {factor * 1.01}

        [[expect]]
        config = "unet.block_out_channels"
        equals = {channels[:-1]}

        [[expect]]
        config = "unet.no_such_key"
        equals = 1
        """
    assert main(["lessons", "check", write_lesson(tmp_path, claims)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "model:" in line]
    assert [line.split()[0] for line in lines] == ["pass", "pass", "pass", "FAIL", "FAIL", "FAIL"]
    assert f"vae.scaling_factor = {factor!r}" in lines[3] and "cannot measure: unet has no config value" in lines[5]


def test_a_description_claim_names_a_run_of_the_lesson(tmp_path):
    path = write_lesson(tmp_path, '\n[[expect]]\nseeds = "0-2"\nrun = "guidance 3"\ncolour = "red"\ncount = 1\n')
    with pytest.raises(ScenarioError) as info:
        load_lesson(path)
    assert "[[expect]] #1: run" in str(info.value) and "'guidance 3' is not a run of this lesson" in str(info.value)
