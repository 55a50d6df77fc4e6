"""Every bad input raises StepvizInputError (a ValueError) naming the value and what is allowed."""

import pytest
from tiny import scene_image, square_mask

from stepviz import Stepper, StepvizInputError

CASES = [
    (dict(height=30), "height=30"),
    (dict(width=100), "width=100"),
    (dict(num_inference_steps=0), "num_inference_steps=0"),
    (dict(guidance_scale=float("nan")), "guidance_scale=nan"),
    (dict(guidance_scale=float("inf")), "guidance_scale=inf"),
    (dict(mode="img2img", image=scene_image(), strength=1.5), "strength=1.5"),
    (dict(mode="img2img", image=scene_image(), strength=-0.1), "strength=-0.1"),
    (dict(scheduler="karras9000"), "scheduler='karras9000'"),
    (dict(mode="outpaint"), "mode='outpaint'"),
    (dict(mode="img2img"), "needs image="),
    (dict(mode="img2img", image="/no/such/picture.png"), "no such file"),
    (dict(mode="inpaint", image=scene_image()), "needs mask_image="),
    (dict(mode="depth2img", image=scene_image()), "5 input channels"),
]


@pytest.mark.parametrize("kwargs,fragment", CASES, ids=[c[1] for c in CASES])
def test_bad_input_is_one_clear_error(tiny_pipe, kwargs, fragment):
    base = dict(prompt="a red circle", num_inference_steps=4, height=32, width=32)
    base.update(kwargs)
    with pytest.raises(StepvizInputError) as caught:
        Stepper(tiny_pipe, **base)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert isinstance(caught.value, ValueError)


def test_unreadable_image(tiny_pipe, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(StepvizInputError, match="not a readable image"):
        Stepper(tiny_pipe, mode="inpaint", image=bad, mask_image=square_mask(), height=32, width=32)


def test_bad_mid_run_edits(tiny_pipe):
    st = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=3, height=32, width=32)
    with pytest.raises(StepvizInputError, match="guidance_scale"):
        st.set_guidance_scale(float("nan"))
    with pytest.raises(StepvizInputError, match="scheduler='nope'"):
        st.set_scheduler("nope")
    with pytest.raises(StepvizInputError, match="rewind k=5"):
        st.rewind(5)
