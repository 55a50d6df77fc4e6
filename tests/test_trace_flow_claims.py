"""A lesson's `trace` claim on a flow loop: the shipped flow-loop example (toy flow model) traced, its verdict,
cause and final difference checked as for the course's SD loop."""

from __future__ import annotations

import pytest

from stepviz.lessons.claims import ClaimFormError, parse_claim
from stepviz.run.lesson_check import _trace


def checked(**table):
    return _trace(parse_claim(table, at_step=0))


def test_a_planted_flow_mistake_is_named_by_the_claim():
    result = checked(trace="flow-loop shift-missing", first_divergence="flow-shift-missing", divergence_step=1,
                     above=0.1)
    assert result.passed, result.measured
    assert "found flow-shift-missing at step 1 (timestep)" in result.measured and result.value > 0.1


def test_a_correct_flow_loop_passes_and_ends_where_the_pipeline_ends():
    result = checked(trace="flow-loop", first_divergence="none", below=1e-4)
    assert result.passed, result.measured
    assert result.value == 0.0  # the same transformer calls, the same bits


@pytest.mark.parametrize(("command", "claimed"), [
    ("flow-loop shift-missing", "none"),  # the mistake is there
    ("flow-loop", "flow-shift-missing"),  # a correct loop has no cause
    ("flow-loop timestep-as-sigma", "flow-shift-missing"),  # another cause found
])
def test_a_wrong_flow_claim_fails_with_what_was_found(command, claimed):
    result = checked(trace=command, first_divergence=claimed)
    assert not result.passed and result.measured.startswith("found ")


def test_a_flow_cause_is_accepted_and_an_unknown_one_refused():
    parse_claim({"trace": "flow-loop", "first_divergence": "flow-init-noise-sigma"}, at_step=0)
    with pytest.raises(ClaimFormError, match="flow-shift-missing"):
        parse_claim({"trace": "flow-loop", "first_divergence": "flow-shift-gone"}, at_step=0)


def test_a_lesson_export_draws_the_traced_flow_loop(tmp_path):
    """stepviz export writes a sheet of each traced example loop: a flow loop's own steps, replayed."""
    from types import SimpleNamespace

    from PIL import Image

    from stepviz.export.traced_sheet import write_traced_sheets

    claim = parse_claim({"trace": "flow-loop shift-missing", "first_divergence": "flow-shift-missing"}, at_step=0)
    written = write_traced_sheets(SimpleNamespace(events=[SimpleNamespace(expect=[claim])]), tmp_path, "approx",
                                  False)
    assert written == ["sheet-traced-flow-loop-shift-missing.png"]
    assert Image.open(tmp_path / written[0]).size == (1920, 1080)
