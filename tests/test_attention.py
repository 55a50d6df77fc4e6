"""Cross-attention capture: the maps match an independent computation, and the sample keeps its bits."""

import diffusers
import pytest
import torch
from tiny import scene_image, square_mask, tiny_components

from stepviz import Stepper, StepvizInputError

PROMPT = "a red circle on a black background"
SIZE = dict(height=64, width=64)  # 8x8 latents: cross-attention at 8x8 and 4x4


def two_resolution_unet(layout: str = "sd1", in_channels: int = 4) -> diffusers.UNet2DConditionModel:
    """A tiny UNet with cross-attention in both down blocks, the mid block and both up blocks.

    sd1: SD 1.x's layout (conv projections in the transformer, a fixed head size);
    sd2: SD 2.x's (linear projections, a head count per block, upcast attention).
    """
    torch.manual_seed(1)
    layout_options = {
        "sd1": dict(attention_head_dim=4, use_linear_projection=False),
        "sd2": dict(attention_head_dim=(2, 4), use_linear_projection=True, upcast_attention=True),
    }[layout]
    return diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
        cross_attention_dim=16, norm_num_groups=4, **layout_options,
    ).eval()


def pipeline(cls_name: str = "StableDiffusionPipeline", layout: str = "sd1", in_channels: int = 4):
    parts = tiny_components(unet_in_channels=in_channels)
    parts["unet"] = two_resolution_unet(layout, in_channels)
    if cls_name == "StableDiffusionDepth2ImgPipeline":
        for key in ("safety_checker", "requires_safety_checker"):
            parts.pop(key)
        parts["depth_estimator"] = None
    pipe = getattr(diffusers, cls_name)(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module", params=["sd1", "sd2"])
def pipe(request):
    return pipeline(layout=request.param)


class HookedMaps:
    """The definition, computed on its own: forward hooks on the cross-attention modules, diffusers' own
    head_to_batch_dim and get_attention_scores, nearest upsampling by repetition, equal-weight mean."""

    def __init__(self, unet, num_tokens: int, latent_side: int):
        self.num_tokens, self.latent_side, self.maps = num_tokens, latent_side, []
        self.handles = [module.register_forward_hook(self.hook, with_kwargs=True)
                        for module in unet.modules() if getattr(module, "is_cross_attention", False)]

    def hook(self, attn, args, kwargs, output):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        text = kwargs["encoder_hidden_states"]
        query = attn.head_to_batch_dim(attn.to_q(hidden[1:]))
        key = attn.head_to_batch_dim(attn.to_k(text[1:]))
        probabilities = attn.get_attention_scores(query, key)  # [heads, pixels, 77]
        mean = probabilities.mean(0)[:, : self.num_tokens]
        side = int(round(mean.shape[0] ** 0.5))
        grid = mean.T.reshape(self.num_tokens, side, side)
        factor = self.latent_side // side
        self.maps.append(grid.repeat_interleave(factor, 1).repeat_interleave(factor, 2))

    def result(self) -> torch.Tensor:
        maps, self.maps = self.maps, []
        return torch.stack(maps).mean(0)

    def remove(self):
        for handle in self.handles:
            handle.remove()


def test_maps_match_the_definition_computed_with_hooks(pipe):
    st = Stepper(pipe, prompt=PROMPT, seed=1, num_inference_steps=3, capture_attention=True, **SIZE)
    tokens = st.prompt_anatomy.tokens
    hooked = HookedMaps(pipe.unet, len(tokens), 8)
    try:
        for _ in range(3):
            record = st.step()
            expected = hooked.result()
            assert record.cross_attention.shape == (len(tokens), 8, 8) == expected.shape
            assert record.cross_attention.dtype == torch.float32
            assert (record.cross_attention - expected).abs().max() < 1e-5
    finally:
        hooked.remove()
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"


def test_per_layer_maps_on_request(pipe):
    st = Stepper(pipe, prompt=PROMPT, seed=1, num_inference_steps=2, capture_attention="layers", **SIZE)
    record = st.step()
    layers = record.cross_attention_layers
    assert len(layers) == 7  # one per down block, the mid block, two per up block
    assert {m.shape[1:] for m in layers.values()} == {(8, 8), (4, 4)}
    assert all(name.endswith("attn2") for name in layers)
    # each layer's probabilities over the 77 keys sum to 1, so the prompt's tokens take at most all of it
    assert all(float(m.sum(0).max()) <= 1 + 1e-5 for m in layers.values())
    assert Stepper(pipe, prompt=PROMPT, num_inference_steps=2, **SIZE).step().cross_attention is None


def test_latents_bit_identical_with_capture_across_swap_rewind_and_fork(pipe):
    def run(capture):
        st = Stepper(pipe, prompt=PROMPT, seed=5, num_inference_steps=6, scheduler="ddim",
                     capture_attention=capture, **SIZE)
        st.step(), st.step()
        st.set_scheduler("euler_a")
        st.step(), st.step()
        st.rewind(3)
        twin = st.fork()
        twin.set_scheduler("dpmpp_2m")
        return st.run(), twin.run()

    processors = dict(pipe.unet.attn_processors)
    plain, captured = run(False), run(True)
    for plain_branch, captured_branch in zip(plain, captured):
        assert len(plain_branch) == len(captured_branch) == 6
        assert all(torch.equal(a.latents, b.latents) for a, b in zip(plain_branch, captured_branch))
        assert all(b.cross_attention is not None and a.cross_attention is None
                   for a, b in zip(plain_branch, captured_branch))
    assert dict(pipe.unet.attn_processors) == processors  # the pipeline is left as it was found


def test_rewound_step_gives_the_same_maps(pipe):
    st = Stepper(pipe, prompt=PROMPT, seed=2, num_inference_steps=4, capture_attention=True, **SIZE)
    first = [r.cross_attention for r in st.run()]
    st.rewind(1)
    again = [r.cross_attention for r in st.run()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[-1])  # the maps change with the step


@pytest.mark.parametrize("cls_name, channels, mode, extra", [
    ("StableDiffusionInpaintPipeline", 9, "inpaint", dict(image=scene_image(64), mask_image=square_mask(64))),
    ("StableDiffusionDepth2ImgPipeline", 5, "depth2img",
     dict(image=scene_image(64), depth_map=torch.rand(1, 64, 64), strength=0.8)),
    ("StableDiffusionInpaintPipeline", 4, "inpaint", dict(image=scene_image(64), mask_image=square_mask(64))),
])
def test_extra_channel_unets(cls_name, channels, mode, extra):
    pipe = pipeline(cls_name, in_channels=channels)
    runs = [Stepper(pipe, prompt=PROMPT, seed=3, num_inference_steps=3, mode=mode, capture_attention=capture,
                    **extra).run() for capture in (False, True)]
    assert all(torch.equal(a.latents, b.latents) for a, b in zip(*runs))
    maps = runs[1][-1].cross_attention
    assert maps.shape[1:] == runs[1][-1].latents.shape[-2:] and float(maps.min()) >= 0


def test_unknown_capture_value_is_a_clear_error(pipe):
    with pytest.raises(StepvizInputError, match="capture_attention='yes'"):
        Stepper(pipe, prompt=PROMPT, capture_attention="yes")
    with pytest.raises(StepvizInputError, match=r"scheduler=42 is not allowed: give a name \(ddim, "):
        Stepper(pipe, prompt=PROMPT, scheduler=42)
