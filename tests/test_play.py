"""The one play loop (stepviz/run/play.py): every front end steps a run and meets its lesson events through it."""

from stepviz import NonFiniteError, Stepper
from stepviz.lessons.events import Event
from stepviz.run.play import play


def tiny_stepper(tiny_pipe, steps=3):
    return Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=steps, height=32, width=32,
                   scheduler="ddim")


def test_each_step_comes_with_the_events_due_once_it_is_taken(tiny_pipe):
    stepper = tiny_stepper(tiny_pipe)
    events = [Event(0, note="start"), Event(1, set_guidance_scale=2.0, note="lower", pause=True),
              Event(3, set_scheduler="euler", note="the end")]
    moments = list(play(stepper, events, from_start=True))
    assert [m.steps_taken for m in moments] == [0, 1, 2, 3]
    assert moments[0].record is None and [m.record.index for m in moments[1:]] == [0, 1, 2]
    assert [m.notes for m in moments] == [["start"], ["lower"], [], ["the end"]]
    assert [m.pause for m in moments] == [False, True, False, False]
    # the guidance change applies from the second step on; at the end there is no step left to change
    assert [r.guidance_scale for r in stepper.records] == [7.5, 2.0, 2.0]
    assert [m.applied for m in moments] == [True, True, True, False] and stepper.scheduler_name == "ddim"


def test_it_steps_only_when_asked_and_at_most_the_steps_given(tiny_pipe):
    stepper = tiny_stepper(tiny_pipe)
    moments = play(stepper, [], steps=2)
    assert stepper.records == []
    next(moments)
    assert len(stepper.records) == 1
    assert len(list(moments)) == 1 and len(stepper.records) == 2 and not stepper.done


def test_the_watchdog_stop_ends_the_loop_with_its_error(tiny_pipe):
    stepper = tiny_stepper(tiny_pipe)
    hook = tiny_pipe.unet.register_forward_hook(lambda module, args, out: (out[0] * float("nan"),))
    try:
        moments = list(play(stepper, [Event(1, note="never shown")]))
    finally:
        hook.remove()
    assert len(moments) == 1 and isinstance(moments[0].stopped, NonFiniteError)
    assert moments[0].events == () and moments[0].record is stepper.records[-1] and stepper.done
