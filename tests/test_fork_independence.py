"""Every branch of a run owns its state: random step / rewind / fork / guidance / scheduler sequences on a
run and its forks, each branch checked bit for bit against a fresh run that replays that branch's own edits."""

import random

import pytest
import torch

from stepviz import Stepper

SETTINGS = dict(prompt="a red circle on a black background", seed=5, num_inference_steps=6, height=32, width=32,
                scheduler="ddim")
SCHEDULERS = ["ddim", "euler", "euler_a", "dpmpp_2m", "lms", "pndm"]


class Branch:
    """A live Stepper and the edits that lead from a fresh run to its current state."""

    def __init__(self, stepper, edits):
        self.stepper, self.edits = stepper, edits

    def steps_taken(self, upto=None):
        return sum(1 for edit in self.edits[:upto] if edit[0] == "step")

    def rewind(self, k):
        self.stepper.rewind(k)
        if k == self.steps_taken():
            return  # a rewind to where it stands keeps the edits made here
        taken = 0
        for position, edit in enumerate(self.edits):
            if edit[0] == "step":
                if taken == k:
                    self.edits = self.edits[:position]
                    return
                taken += 1


def replay(pipe, edits):
    fresh = Stepper(pipe, **SETTINGS)
    for edit in edits:
        if edit[0] == "step":
            fresh.step()
        elif edit[0] == "guidance":
            fresh.set_guidance_scale(edit[1])
        else:
            fresh.set_scheduler(edit[1])
    return fresh


def assert_same_run(branch, fresh):
    live = branch.stepper
    assert len(live.records) == len(fresh.records)
    for a, b in zip(live.records, fresh.records):
        assert torch.equal(a.latents, b.latents)
        assert (a.guidance_scale, a.scheduler) == (b.guidance_scale, b.scheduler)
    assert torch.equal(live.latents, fresh.latents)
    assert (live.guidance_scale, live.scheduler_name, live.done) == (fresh.guidance_scale, fresh.scheduler_name,
                                                                      fresh.done)
    # and from here both go on alike
    live_next = live.fork().run()[-1].latents if not live.done else live.latents
    fresh_next = fresh.run()[-1].latents if not fresh.done else fresh.latents
    assert torch.equal(live_next, fresh_next)


@pytest.mark.parametrize("seed", range(10))
def test_random_edits_on_forks_stay_in_their_branch(tiny_pipe, seed):
    rng = random.Random(seed)
    branches = [Branch(Stepper(tiny_pipe, **SETTINGS), [])]
    for _ in range(60):
        branch = rng.choice(branches)
        st = branch.stepper
        action = rng.choice(["step", "step", "step", "rewind", "fork", "guidance", "scheduler"])
        if action == "step" and not st.done:
            st.step()
            branch.edits.append(("step",))
        elif action == "rewind":
            branch.rewind(rng.randint(0, len(st.records)))
        elif action == "fork" and len(branches) < 4:
            branches.append(Branch(st.fork(), list(branch.edits)))
        elif action == "guidance":
            scale = rng.choice([0.0, 1.0, 3.0, 5.0, 12.0])
            st.set_guidance_scale(scale)
            branch.edits.append(("guidance", scale))
        elif action == "scheduler" and not st.done:
            name = rng.choice(SCHEDULERS)
            st.set_scheduler(name)
            branch.edits.append(("scheduler", name))
    for branch in branches:
        assert_same_run(branch, replay(tiny_pipe, branch.edits))


def test_the_reported_case_a_fork_edit_does_not_reach_the_original_after_a_rewind(tiny_pipe):
    st = Stepper(tiny_pipe, **{**SETTINGS, "num_inference_steps": 14})
    for _ in range(12):
        st.step()
    st.rewind(10)
    fork = st.fork()
    fork.set_guidance_scale(5)
    st.rewind(10)
    assert st.step().guidance_scale == 7.5
    fork.step()
    assert fork.records[-1].guidance_scale == 5
