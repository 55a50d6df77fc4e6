"""The edit log: one typed record per edit, and the one conversion of a log into the lesson events that
replay it (what `stepviz export` of a notebook or TUI run writes)."""

from stepviz import Stepper
from stepviz.engine.edit_log import Fork, GuidanceChange, Rewind, SchedulerSwap
from stepviz.lessons.events import events_from_edits
from stepviz.notebook.run_settings import settings_for_stepper


def make(pipe, **kwargs):
    base = dict(prompt="a red circle", seed=3, num_inference_steps=6, guidance_scale=7.5, height=32, width=32,
                scheduler="ddim")
    return Stepper(pipe, **{**base, **kwargs})


def test_each_edit_is_a_typed_record_at_its_step(tiny_pipe):
    st = make(tiny_pipe)
    st.step()
    st.set_guidance_scale(3.0)
    st.set_scheduler("ddim")  # the same name: logged, nothing swapped
    st.step()
    st.set_scheduler("euler")
    st.rewind(1)
    twin = st.fork()
    assert [type(edit) for edit in st.log] == [GuidanceChange, SchedulerSwap, SchedulerSwap, Rewind, Fork]
    guidance, same, swap, rewind, fork = st.log
    assert (guidance.at_step, guidance.old, guidance.new, guidance.noise_pred_from) == (1, 7.5, 3.0, "cfg")
    assert not same.changed and same.detail == {"old": "ddim", "new": "ddim"}
    assert swap.changed and swap.at_step == 2 and swap.family == "vp->sigma" and swap.t is not None
    assert (rewind.to, rewind.from_) == (1, 2) and fork.at_step == 1
    assert isinstance(twin.log[-1], Fork) and len(twin.log) == len(st.log)
    # the manifest's and describe()'s spelling is unchanged
    assert guidance.action == "set_guidance_scale" and rewind.detail == {"to": 1, "from_": 2}
    assert rewind.describe() == "step 2: rewind(to=1, from_=2)"


def test_the_edits_still_part_of_the_run_become_events(tiny_pipe):
    st = make(tiny_pipe)
    st.set_guidance_scale(5.0)
    st.step()
    st.step()
    st.set_scheduler("ddim")  # no change: no event
    st.set_scheduler("euler")
    st.step()
    st.set_guidance_scale(2.0)
    st.rewind(3)  # keeps the edits made at steps 0 and 2, drops none after 3
    st.set_guidance_scale(9.0)
    st.rewind(2)  # drops the one made at step 3
    events = events_from_edits(st.log, "the TUI")
    assert [(e.at_step, e.set_guidance_scale, e.set_scheduler) for e in events] == [
        (0, 5.0, None), (2, None, "euler")]
    assert events[1].note == "scheduler set to euler in the TUI"
    # the notebook's settings start from the values before the first edit
    settings, problem = settings_for_stepper(st, {})
    assert problem is None and (settings.guidance_scale, settings.scheduler) == (7.5, "ddim")
