"""Attention claims in lessons: a word's share of cross-attention on the shape, as the attention view shows it."""

import pytest
from test_lessons_check import write_lesson

from stepviz.cli import main
from stepviz.run.lesson_file import load_scenario
from stepviz.lessons.shipped import ScenarioError


def test_attention_claims_are_measured_and_can_fail(tmp_path, capsys):
    path = write_lesson(tmp_path, """
        [[events.expect]]
        metric = "attention_vs_even"
        token = "triangle"
        above = 0.01

        [[events.expect]]
        metric = "attention_on_shape"
        token = "triangle"
        above = 0.999

        [[events.expect]]
        metric = "attention_vs_even"
        token = "teal"
        above = 1
        """)
    assert main(["lessons", "check", path]) == 1
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if "step   2" in line]
    assert lines[0].startswith("pass") and "attention_vs_even of 'triangle' > 0.01" in lines[0]
    assert lines[1].startswith("FAIL") and "attention_on_shape = 0." in lines[1]
    assert lines[2].startswith("FAIL") and "token 'teal' is not in the prompt" in lines[2] and "yellow" in lines[2]


@pytest.mark.parametrize("claim, words", [
    ('metric = "attention_vs_even"\nabove = 1', "metric (line 14): attention_vs_even needs token = \"word\""),
    ('metric = "sigma"\ntoken = "red"\nabove = 1', "token (line 15): token = \"word\" goes only with"),
    ('metric = "attention_on_shape"\ntoken = "red"\npicture = "x_t"\nabove = 0.1', "finds the shape in x0-hat"),
    ('step = 0\nmetric = "attention_on_shape"\ntoken = "red"\nabove = 0.1', "recorded by a step"),
])
def test_malformed_attention_claims_are_refused(tmp_path, claim, words):
    path = write_lesson(tmp_path, "\n[[events.expect]]\n" + claim + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert words in str(info.value)
