"""The toy variants' training: extra channels built as diffusers builds them, and a tiny run end to end."""

import json

import numpy as np
import pytest
import torch

from training import components
from training.extra_channels import (depth_at_latent_size, mask_at_latent_size, masked_pixels, pixels_from_uint8,
                                        widen_conv_in)
from training.train_variants import eps_loss
from training.dataset import draw_scene_set
from training.variant_data import HOLE_KINDS, draw_hole, draw_inpaint_examples
from stepviz.toy.world import draw_scene

from tiny import save_tiny_toy_base, tiny_components, tiny_pipeline


def test_widened_unet_starts_as_the_base_unet():
    torch.manual_seed(0)
    base = components.make_unet(components.TINY, 32).eval()
    wide = widen_conv_in(base, 5).eval()
    assert wide.config.in_channels == 9 and wide.conv_in.weight.shape[1] == 9
    x_t, extra = torch.randn(2, 4, 4, 4), torch.randn(2, 5, 4, 4)
    states = torch.randn(2, 77, components.TINY.text_width)
    with torch.no_grad():
        expected = base(x_t, 500, states).sample
        got = wide(torch.cat([x_t, extra], 1), 500, states).sample
    torch.testing.assert_close(got, expected)


def test_eps_loss_weighs_the_hole_and_the_timesteps():
    eps = torch.zeros(2, 4, 4, 4)
    hole = torch.zeros(2, 1, 4, 4)
    hole[:, :, :2] = 1.0  # top half repainted
    error_inside, error_outside = eps.clone(), eps.clone()
    error_inside[:, :, :2], error_outside[:, :, 2:] = 1.0, 1.0
    abar = torch.tensor([0.5, 0.5])  # SNR 1: below gamma 5, so Min-SNR leaves it alone
    assert eps_loss(error_inside, eps, abar, 5.0) == pytest.approx(0.5)
    assert eps_loss(error_inside, eps, abar, 5.0, torch.ones_like(hole)) == pytest.approx(0.5)
    weight = 1.0 + 2.0 * hole  # inside x3: an error inside counts 3/4 of the average, outside 1/4
    assert eps_loss(error_inside, eps, abar, 5.0, weight) == pytest.approx(0.75)
    assert eps_loss(error_outside, eps, abar, 5.0, weight) == pytest.approx(0.25)
    clean = torch.tensor([0.99, 0.99])  # SNR 99: weighted down to gamma / SNR
    assert eps_loss(error_inside, eps, clean, 5.0) == pytest.approx(0.5 * 5.0 / 99.0)
    assert eps_loss(error_inside, eps, clean, 0.0) == pytest.approx(0.5)


def test_inpaint_channels_match_the_diffusers_pipeline():
    from PIL import Image

    pipe = tiny_pipeline("StableDiffusionInpaintPipeline", unet_in_channels=9)
    scene = draw_scene("red", "square", "black", seed=3, size=32)
    hole = draw_hole("box_around", np.random.default_rng(0), scene.mask, scene.centre, scene.radius)
    pixels = pixels_from_uint8(scene.image[None])
    holes = torch.from_numpy(hole)[None, None]
    mask_condition = pipe.mask_processor.preprocess(Image.fromarray((hole * 255).astype(np.uint8)))
    init_image = pipe.image_processor.preprocess(scene.pil())
    torch.testing.assert_close(masked_pixels(pixels, holes), init_image * (mask_condition < 0.5))
    mask, _ = pipe.prepare_mask_latents(mask_condition, init_image * (mask_condition < 0.5), 1, 32, 32,
                                        torch.float32, "cpu", torch.Generator().manual_seed(0), False)
    torch.testing.assert_close(mask_at_latent_size(holes, 4), mask)


def test_depth_channel_matches_the_diffusers_pipeline():
    from diffusers import StableDiffusionDepth2ImgPipeline

    parts = tiny_components(unet_in_channels=5)
    for key in ("safety_checker", "requires_safety_checker"):
        parts.pop(key)
    pipe = StableDiffusionDepth2ImgPipeline(depth_estimator=None, **parts)
    scene = draw_scene("blue", "circle", "white", seed=5, size=32)
    depth = torch.from_numpy(scene.depth)[None]
    expected = pipe.prepare_depth_map(scene.pil(), depth, 1, False, torch.float32, torch.device("cpu"))
    got = depth_at_latent_size(depth, 4)
    torch.testing.assert_close(got, expected)
    assert got.amax() == 1 and got.amin() == -1


@pytest.mark.parametrize("kind", HOLE_KINDS)
def test_holes_around_the_shape_contain_it(kind):
    scene = draw_scene("green", "triangle", "black", seed=11)
    hole = draw_hole(kind, np.random.default_rng(1), scene.mask, scene.centre, scene.radius)
    assert hole.dtype == bool and hole.shape == scene.mask.shape and 0 < hole.sum()
    if kind.endswith("_around") or kind in ("shape_dilated", "whole"):
        assert hole[scene.mask].all()


def test_inpaint_captions_name_what_lies_in_the_hole():
    from stepviz.toy.checker import inspect
    from training.dataset import CAPTIONS, EMPTY_CAPTION_INDEX
    from stepviz.toy.world import parse_caption

    scenes = draw_scene_set(60, 64, seed=1)
    examples = draw_inpaint_examples(scenes, 120, seed=2)
    placed = 0
    for image, hole, index, kind in zip(examples.images, examples.holes, examples.caption_index, examples.kinds):
        if index == EMPTY_CAPTION_INDEX:
            assert HOLE_KINDS[kind].startswith("random_")
            continue
        if HOLE_KINDS[kind].startswith("placed_"):
            ys, xs = np.nonzero(hole)
            crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            colour, _, _ = parse_caption(CAPTIONS[index])
            placed += inspect(crop)["colour"] == colour
    assert placed >= 20  # the drawn shape sits in the hole and is the caption's colour


def test_placed_fill_sets_the_size_of_the_new_shape():
    from stepviz.toy.checker import inspect

    scenes = draw_scene_set(40, 64, seed=3)

    def placed_areas(fill):
        examples = draw_inpaint_examples(scenes, 80, seed=5, placed_fill=fill)
        areas = []
        for image, hole, kind in zip(examples.images, examples.holes, examples.kinds):
            if HOLE_KINDS[kind].startswith("placed_"):
                ys, xs = np.nonzero(hole)
                areas.append(inspect(image[ys.min():ys.max() + 1, xs.min():xs.max() + 1])["blob_area"])
        return np.asarray(areas)

    small, large = placed_areas((0.5, 0.5)), placed_areas((0.9, 0.9))
    assert len(small) == len(large) >= 20  # the same holes, only the shapes' sizes differ
    assert np.median(large / np.maximum(small, 1)) > 2.5  # area grows as (0.9 / 0.5)^2 = 3.2


@pytest.mark.parametrize("kind", ["placed_box", "placed_ellipse"])
def test_placed_side_sets_the_size_of_a_placed_hole(kind):
    from training.variant_data import placed_hole

    scene = draw_scene("red", "circle", "black", seed=2, size=64, radius_range=(0.16, 0.16))
    for side in (0.3, 0.45):
        hole = placed_hole(kind, np.random.default_rng(0), scene.mask, side=(side, side))
        ys, xs = np.nonzero(hole)
        assert not (hole & scene.mask).any()
        assert abs(xs.max() - xs.min() + 1 - side * 64) <= 1.5 and abs(ys.max() - ys.min() + 1 - side * 64) <= 1.5


def test_unpainted_pictures_leave_only_the_placed_holes_empty():
    scenes = draw_scene_set(40, 64, seed=3)
    examples = draw_inpaint_examples(scenes, 80, seed=6)
    painted = (examples.images != examples.unpainted).any(axis=-1)
    placed = np.array([HOLE_KINDS[k].startswith("placed_") for k in examples.kinds])
    assert not painted[~placed].any()  # every other example asks for nothing new: the same picture
    assert not (painted & ~examples.holes).any()  # a new shape only ever lies inside its hole
    assert painted[placed].any(axis=(1, 2)).mean() > 0.5  # most placed holes got one


def test_inpaint_examples_are_deterministic():
    scenes = draw_scene_set(6, 32, seed=0)
    first, second = draw_inpaint_examples(scenes, 10, seed=4), draw_inpaint_examples(scenes, 10, seed=4)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.holes, second.holes)
    assert first.images.shape == (10, 32, 32, 3) and first.holes.any(axis=(1, 2)).all()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny base toy model (size 32) saved as a StableDiffusionPipeline folder, and a tiny depth estimator."""
    from training.depth_estimator import main as estimator_main

    root = tmp_path_factory.mktemp("toy-variants")
    save_tiny_toy_base(root)
    estimator_main(["--out", str(root / "estimator"), "--tiny", "--size", "32", "--steps", "2", "--batch", "4",
                    "--scenes", "8", "--held-out", "4"])
    assert "mean absolute depth error" in (root / "estimator" / "depth_estimator.md").read_text()
    return root


def test_decoder_fine_tune_keeps_the_encoder_and_the_rest_of_the_folder(tiny_base):
    from diffusers import AutoencoderKL

    from training.train_decoder import foreground, main as decoder_main

    scene = draw_scene("red", "circle", "white", seed=3, size=64)
    shapes = foreground(scene.image[None])[0]
    assert (shapes & scene.mask).sum() / (shapes | scene.mask).sum() > 0.9

    out = tiny_base / "decoder"
    decoder_main(["--model", str(tiny_base / "base"), "--out", str(out), "--steps", "2", "--batch", "4",
                  "--scenes", "8", "--examples", "8", "--threads", "1"])
    before = AutoencoderKL.from_pretrained(tiny_base / "base" / "vae").state_dict()
    after = AutoencoderKL.from_pretrained(out / "vae").state_dict()
    same = {name: torch.equal(before[name], after[name]) for name in before}
    assert all(same[name] for name in same if name.startswith(("encoder.", "quant_conv.")))
    assert not all(same[name] for name in same if name.startswith("decoder."))
    for part in ("unet", "text_encoder"):
        for file in (tiny_base / "base" / part).iterdir():
            assert (out / part / file.name).read_bytes() == file.read_bytes()
    assert "--steps 2" in (out / "DECODER.md").read_text() and not (tiny_base / "decoder.tmp").exists()


@pytest.mark.parametrize("variant, class_name, channels", [
    ("inpaint", "StableDiffusionInpaintPipeline", 9), ("depth", "StableDiffusionDepth2ImgPipeline", 5)])
def test_tiny_variant_training_writes_a_loadable_pipeline(tiny_base, variant, class_name, channels):
    import diffusers

    out = tiny_base / variant
    train = ["--base", str(tiny_base / "base"), "--variant", variant, "--out", str(out), "--steps", "2",
             "--batch", "4", "--scenes", "8", "--examples", "8", "--depth-estimator", str(tiny_base / "estimator")]
    from training.train_variants import main as train_main

    train_main(train)
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == class_name
    assert "--variant " + variant in (out / "TRAINING.md").read_text() and (out / "loss_curve.png").exists()
    for part in ("unet", "vae", "text_encoder") + (("depth_estimator",) if variant == "depth" else ()):
        assert list((out / part).glob("*.safetensors")) and not list((out / part).glob("*.bin"))
    pipe = getattr(diffusers, class_name).from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == channels
    # the VAE and the text encoder are the base model's, untouched
    base = diffusers.StableDiffusionPipeline.from_pretrained(tiny_base / "base")
    for mine, theirs in ((pipe.vae, base.vae), (pipe.text_encoder, base.text_encoder)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(a, b, msg=name)
    scene = draw_scene("red", "circle", "black", seed=0, size=32)
    extra = dict(mask_image=scene.pil().convert("L")) if variant == "inpaint" else {}
    image = pipe("a blue circle on a black background", image=scene.pil(), num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0), output_type="np", **extra).images[0]
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()

    # resuming a finished run trains no further and writes the same weights
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    train_main(train + ["--resume"])
    again = getattr(diffusers, class_name).from_pretrained(out).unet.state_dict()
    for name, value in before.items():
        torch.testing.assert_close(again[name], value, msg=name)


def test_a_second_fine_tune_starts_from_the_variants_unet(tiny_base, tmp_path):
    from diffusers import StableDiffusionPipeline

    from training.train_variants import initial_unet

    base = StableDiffusionPipeline.from_pretrained(tiny_base / "base")
    widened = initial_unet(base, "inpaint", None)
    assert widened.config.in_channels == 9
    widened.save_pretrained(tmp_path / "first" / "unet", safe_serialization=True)
    again = initial_unet(base, "inpaint", str(tmp_path / "first"))
    for (name, a), b in zip(again.state_dict().items(), widened.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(SystemExit, match="takes 4 channels, the inpaint variant 9"):
        initial_unet(base, "inpaint", str(tiny_base / "base"))


def test_a_second_run_with_dropped_captions_painting_nothing(tiny_base, tmp_path):
    import diffusers

    from training.checkpoint import load_checkpoint
    from training.train_variants import main as train_main

    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--base", str(tiny_base / "base"), "--variant", "inpaint", "--batch", "4", "--scenes", "8",
              "--examples", "8"]
    train_main(common + ["--out", str(first), "--steps", "1"])
    train_main(common + ["--out", str(second), "--steps", "2", "--init-from", str(first), "--dropped-paints-nothing",
                         "--ema-decay", "0.5"])
    cached = load_checkpoint(second / "scratch" / "variant_set.pt")
    assert cached["dropped_mean"].shape == cached["mean"].shape
    assert "--dropped-paints-nothing" in (second / "TRAINING.md").read_text()
    assert diffusers.StableDiffusionInpaintPipeline.from_pretrained(second).unet.config.in_channels == 9
    with pytest.raises(SystemExit, match="drawn without it"):  # a cache drawn without the targets is refused
        train_main(common + ["--out", str(first), "--steps", "1", "--resume", "--dropped-paints-nothing"])


SHIPPED_VARIANTS = [("toy-inpaint", "StableDiffusionInpaintPipeline", 9, "inpaint"),
                    ("toy-depth", "StableDiffusionDepth2ImgPipeline", 5, "depth2img")]


@pytest.mark.parametrize("name, class_name, channels, mode", SHIPPED_VARIANTS)
def test_shipped_variant_folder_loads_and_steps(name, class_name, channels, mode):
    from stepviz import Stepper, load_pipeline
    from stepviz.models.folder_check import weight_files
    from stepviz.models.loading import shipped_folder
    from training.sources import PROVENANCE

    folder = shipped_folder(name)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == class_name
    weights = weight_files(folder)
    assert weights and not list(folder.parent.rglob("*.bin")) and not (folder / "scratch").exists()
    assert sum(path.stat().st_size for _, path in weights) <= 25 * 2**20
    assert "python -m training.train_variants" in (PROVENANCE / name / "TRAINING.md").read_text()
    pipe = load_pipeline(name)
    assert pipe.unet.config.in_channels == channels
    scene = draw_scene("red", "circle", "black", seed=1)
    extra = dict(mask_image=scene.pil().convert("L")) if mode == "inpaint" else {}
    stepper = Stepper(pipe, prompt="a blue circle on a black background", seed=0, num_inference_steps=3,
                      mode=mode, image=scene.pil(), **extra)
    stepper.run()
    assert stepper.done and np.asarray(stepper.image()).shape == (64, 64, 3)


def test_inpaint_evaluation_runs_the_cases_once_per_seed():
    from training.evaluate_variants import InpaintCase, evaluate_inpaint
    from training.variant_data import box_hole
    from stepviz.toy.world import caption

    pipe = tiny_pipeline("StableDiffusionInpaintPipeline", unet_in_channels=9)
    scene = draw_scene("red", "circle", "black", seed=1, size=32)
    case = InpaintCase(scene, box_hole(32, 2, 2, 14, 14), "elsewhere", caption("blue", "square", "black"), "blue",
                       "square")
    rows = evaluate_inpaint(pipe, steps=2, cases=[case], seeds=3)
    assert [r["prompt"] for r in rows] == [case.prompt] * 3
    assert not np.array_equal(rows[0]["output"], rows[1]["output"])  # seeds 0 and 1
    assert all(r["outside"] >= 0 and isinstance(r["colour_ok"], bool) for r in rows)


def test_depth_verdict_needs_the_prompts_colour_at_full_strength_and_the_inputs_at_low_strength():
    from training.evaluate_variants import DEPTH_ROWS, LOW_STRENGTH, format_depth_table

    def row(strength, colour, kept):
        return dict(strength=strength, depth="estimator", n=36, iou=0.8, iou_ok=0.9, colour=colour, kept=kept,
                    shape=0.9)

    assert DEPTH_ROWS[0] == (1.0, False) and DEPTH_ROWS[1] == (LOW_STRENGTH, False)
    good = format_depth_table([row(1.0, 0.9, 0.0), row(LOW_STRENGTH, 0.1, 0.9)])
    assert "(b) PASS" in good and "input's colour kept 90.0%" in good
    # the low-strength run painted the prompt's colour: the input was not followed
    assert "(b) FAIL" in format_depth_table([row(1.0, 0.9, 0.0), row(LOW_STRENGTH, 0.9, 0.05)])
    assert "(b) FAIL" in format_depth_table([row(1.0, 0.5, 0.0), row(LOW_STRENGTH, 0.1, 0.9)])


class _CaptionRecordingUNet(torch.nn.Module):
    """Stands in for the variant UNet: eps_hat from conv_in, and a record of the text rows each batch got."""

    def __init__(self):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(5, 4, 1)
        self.seen = []

    def forward(self, x, t, states):
        from types import SimpleNamespace

        self.seen.append(states[:, 0, 0].detach().clone())
        return SimpleNamespace(sample=self.conv_in(x))


@pytest.mark.parametrize("colour_noise", [0.0, 1.0])
def test_variant_captions_name_a_wrong_colour_as_often_as_asked(tmp_path, colour_noise):
    from training.dataset import CAPTIONS
    from training.train_variants import VariantSet, train_variant_unet
    from stepviz.toy.world import parse_caption

    count, truth = 16, 7  # every example is captioned CAPTIONS[7]
    data = VariantSet(torch.zeros(count, 4, 2, 2), torch.zeros(count, 4, 2, 2), torch.zeros(count, 1, 2, 2),
                      torch.zeros(count, 1, 2, 2), torch.full((count,), truth))
    text_states = torch.arange(len(CAPTIONS) + 1, dtype=torch.float32).view(-1, 1, 1)  # row i holds i
    unet = _CaptionRecordingUNet()
    train_variant_unet(unet, text_states, data, steps=3, batch=8, lr=1e-4, seed=0, phase=9,
                       checkpoint_path=tmp_path / "unet.pt", caption_dropout=0.0, colour_noise=colour_noise)
    given = [parse_caption(CAPTIONS[int(i)]) for batch in unet.seen for i in batch]
    colour, shape, background = parse_caption(CAPTIONS[truth])
    assert len(given) == 24 and all(g[1:] == (shape, background) for g in given)
    wrong = [g for g in given if g[0] != colour]
    assert len(wrong) == (0 if colour_noise == 0.0 else len(given))
