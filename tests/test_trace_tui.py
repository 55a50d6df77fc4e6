"""`stepviz trace --open`: the traced loop and the pipeline's run side by side, stepped together."""

import pytest
from diy_loops import txt2img_loop

import stepviz

pytest.importorskip("textual")

from stepviz.trace.replay import replays  # noqa: E402
from stepviz.run.session import FORK, MAIN  # noqa: E402
from stepviz.tui.screens.compare import CompareScreen  # noqa: E402
from stepviz.tui.trace_app import TraceApp  # noqa: E402


async def settle(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_loop_and_the_pipeline_step_side_by_side(tiny_pipe):
    with stepviz.trace(tiny_pipe) as tr:
        txt2img_loop(tiny_pipe, "euler", mistake="missing-scale-model-input")
    report = tr.compare()
    loop, reference = replays(report, tiny_pipe)
    app = TraceApp(report, loop, reference, tiny_pipe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [type(s).__name__ for s in app.screen_stack[1:]] == ["TraceMainScreen", "CompareScreen"]
        titles = [str(label.render()) for label in screen.query(".branch-title")]
        assert "A: your loop (first divergence: step 0, scaled model input)" in titles[0]
        assert titles[1].startswith("B: the pipeline")
        for _ in range(2):
            await pilot.press("space")
            await settle(pilot)
        session = app.session
        assert [len(session.view(b).records) for b in (MAIN, FORK)] == [2, 2]
        mine, theirs = session.view(MAIN).records[1], session.view(FORK).records[1]
        assert mine.timestep == theirs.timestep and not mine.latents.equal(theirs.latents)
        assert mine.latents.equal(report.user.steps[1].carried)
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("enter")  # the dialog's value as it is: refused, the app stays alive
        await settle(pilot)
        assert session.view(FORK).guidance_scale == report.run.guidance_scale
        assert any("is a recording" in str(n.message) for n in app._notifications)


def test_a_recorded_multistep_loop_shows_no_history_it_does_not_know():
    """A replayed recording does not know its solver's history: the status says nothing rather than '0/4'."""
    from types import SimpleNamespace

    from stepviz.render.readouts import scheduler_text

    replay = SimpleNamespace(scheduler="lms", family="sigma", order=4, multistep=True, history_fill=None)
    stepping = SimpleNamespace(**{**vars(replay), "history_fill": (2, 4)})
    assert scheduler_text(replay) == "lms (sigma, order 4)"
    assert scheduler_text(stepping) == "lms (sigma, order 4, history 2/4)"


async def test_the_verdict_is_shown_whole_at_160_columns(tiny_pipe):
    with stepviz.trace(tiny_pipe) as tr:
        txt2img_loop(tiny_pipe, "euler", mistake="missing-scale-model-input")
    report = tr.compare()
    loop, reference = replays(report, tiny_pipe)
    app = TraceApp(report, loop, reference, tiny_pipe)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        title = app.screen.query_one("#compare-title")
        explanation = report.first_divergence.cause.explanation
        assert title.size.height >= 2 and len(app.verdict) > 160
        shown = " ".join(str(line.text) for line in title.render_lines(title.region.reset_offset))
        assert " ".join(explanation.split()[-4:]) in " ".join(shown.split())
