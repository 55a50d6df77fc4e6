"""Do the toy variants do their job? Run the diffusers pipelines and ask the checker.

    python -m training.evaluate_variants [--inpaint toy-inpaint] [--depth toy-depth] [--steps 25] [--seeds 4]

(a) Inpainting (StableDiffusionInpaintPipeline, strength 1): a one-shape scene, a hole
    either on empty background ("elsewhere") or over the shape ("covering"), and a
    prompt asking for another colour and shape there. The checker judges the crop of
    the hole's bounding box; outside the hole the output is compared with the
    original (mean absolute difference in 0..255, next to the VAE round trip's own
    difference, the floor any latent model has).
(b) Depth2Img (StableDiffusionDepth2ImgPipeline): a one-shape scene and a prompt with
    another colour; the depth comes from the pipeline's own estimator (or the true
    depth map). Layout kept = IoU of the checker's shape masks of input and output.
    At strength 1.0 the prompt's colour should win with the layout kept; at strength
    0.3 the input's colour should stay (the run starts from the input, 30% noised).

Fixed seeds everywhere: each set of 36 cases runs --seeds times, picture i with
torch.Generator().manual_seed(i) (so round r has seeds 36r..36r+35); DDIM, guidance 7.5.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from stepviz.toy.checker import inspect
from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, Scene, caption, draw_scene

from .extra_channels import pixels_from_uint8
from .variant_data import box_hole, disk

HOLE_SIDE = 30  # pixels, the "elsewhere" hole (a square on empty background)
MIN_CASE_SIZE = 2 * HOLE_SIDE + 4  # pictures smaller than this leave no room for an "elsewhere" hole
OUTSIDE_BOUND = 12.0  # (a) passes when the mean |output - original| outside the hole is below this (0..255)
INPAINT_PASS_RATE = 0.85  # (a) passes when the asked colour and shape are both right this often
DEPTH_COLOUR_RATE = 0.8  # (b) passes when the prompt's colour is right this often (and the mean IoU >= IOU_BOUND)
KEPT_COLOUR_RATE = 0.8  # (b) and, at LOW_STRENGTH, when the input's colour stays this often
LOW_STRENGTH = 0.3
DEPTH_ROWS = ((1.0, False), (LOW_STRENGTH, False), (0.8, False), (1.0, True))  # (strength, true depth map?)
IOU_BOUND = 0.6


@dataclass
class InpaintCase:
    scene: Scene
    hole: np.ndarray  # bool H x W, True = repaint
    placement: str  # "elsewhere" or "covering"
    prompt: str
    colour: str  # asked for
    shape: str  # asked for


def shifted_name(names: list[str], name: str, shift: int) -> str:
    """The name `shift` places after `name` in `names` (wrapping): a different colour or shape, chosen fixedly."""
    return names[(names.index(name) + shift) % len(names)]


def _elsewhere_hole(scene: Scene) -> np.ndarray | None:
    """A HOLE_SIDE square in a corner of the picture, clear of the (dilated) shape; None if none fits."""
    size = scene.image.shape[0]
    clear = ndimage.binary_dilation(scene.mask, structure=disk(3))
    for x0, y0 in ((2, 2), (size - 2 - HOLE_SIDE, 2), (2, size - 2 - HOLE_SIDE), (size - 2 - HOLE_SIDE,) * 2):
        hole = box_hole(size, x0, y0, x0 + HOLE_SIDE, y0 + HOLE_SIDE)
        if not (hole & clear).any():
            return hole
    return None


def inpaint_cases(size: int = 64) -> list[InpaintCase]:
    """36 cases: every asked colour x shape, each on both backgrounds, holes elsewhere and covering."""
    if size < MIN_CASE_SIZE:
        raise ValueError(f"picture size {size}: the inpainting cases need at least {MIN_CASE_SIZE} pixels")
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    cases = []
    for k, (colour, shape) in enumerate((c, s) for c in colours for s in SHAPES):
        background = backgrounds[k % 2]
        old_colour, old_shape = shifted_name(colours, colour, 1 + k % 5), shifted_name(list(SHAPES), shape, 1 + k % 2)
        for placement in ("elsewhere", "covering"):
            seed = 900 + 10 * k
            while True:  # first seed whose scene leaves room for the hole
                scene = draw_scene(old_colour, old_shape, background, seed=seed, size=size)
                hole = _elsewhere_hole(scene) if placement == "elsewhere" else _around(scene)
                if hole is not None:
                    break
                seed += 1
            cases.append(InpaintCase(scene, hole, placement, caption(colour, shape, background), colour, shape))
    return cases


def _around(scene: Scene) -> np.ndarray:
    ys, xs = np.nonzero(scene.mask)
    return box_hole(scene.image.shape[0], xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4)


def _uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def _ddim(pipe):
    from diffusers import DDIMScheduler

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def vae_round_trip(vae, images: np.ndarray) -> np.ndarray:
    """uint8 pictures N x H x W x 3 through encode (posterior mean) -> decode, back to uint8."""
    decoded = vae.decode(vae.encode(pixels_from_uint8(images)).latent_dist.mean).sample
    return _uint8((decoded.permute(0, 2, 3, 1).numpy() + 1) / 2)


def hole_crop(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The part of `image` inside the hole's bounding box (what the checker judges)."""
    ys, xs = np.nonzero(hole)
    return image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def evaluate_inpaint(pipe, steps: int = 25, guidance_scale: float = 7.5,
                     cases: list[InpaintCase] | None = None, seeds: int = 1) -> list[dict]:
    """One row per case: asked colour/shape found in the hole's crop, mean difference outside.

    `pipe` is a StableDiffusionInpaintPipeline: with a 9-channel UNet the inpainting model, with
    a 4-channel one the DIY blend loop (the same loop as stepviz's Stepper, bit for bit). The cases
    run `seeds` times over, picture i with seed i.
    """
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    cases = (cases if cases is not None else inpaint_cases(size)) * seeds
    with torch.no_grad():
        outputs = _uint8(_ddim(pipe)(
            prompt=[c.prompt for c in cases], image=[c.scene.pil() for c in cases],
            mask_image=[Image.fromarray((c.hole * 255).astype(np.uint8)) for c in cases],
            num_inference_steps=steps, guidance_scale=guidance_scale, output_type="np",
            generator=[torch.Generator().manual_seed(i) for i in range(len(cases))]).images)
    originals = np.stack([c.scene.image for c in cases])
    round_trips = vae_round_trip(pipe.vae, originals)
    rows = []
    for case, output, round_trip in zip(cases, outputs, round_trips):
        found = inspect(hole_crop(output, case.hole))
        outside = ~case.hole
        difference = np.abs(output.astype(float) - case.scene.image)[outside].mean()
        floor = np.abs(round_trip.astype(float) - case.scene.image)[outside].mean()
        rows.append(dict(placement=case.placement, prompt=case.prompt, colour_ok=found["colour"] == case.colour,
                         shape_ok=found["shape"] == case.shape, outside=difference, outside_vae=floor,
                         output=output))
    return rows


def inpaint_rows_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per `placement` (in order of appearance), then all of them."""
    lines = ["| hole | cases | colour right | shape right | both right | mean abs diff outside hole "
             "| VAE round trip (floor) |", "|---|---|---|---|---|---|---|"]
    for placement in list(dict.fromkeys(r["placement"] for r in rows)) + ["all"]:
        chosen = [r for r in rows if placement in ("all", r["placement"])]
        both = np.mean([r["colour_ok"] and r["shape_ok"] for r in chosen])
        lines.append(f"| {placement} | {len(chosen)} | {np.mean([r['colour_ok'] for r in chosen]):.1%} "
                     f"| {np.mean([r['shape_ok'] for r in chosen]):.1%} | {both:.1%} "
                     f"| {np.mean([r['outside'] for r in chosen]):.1f} "
                     f"| {np.mean([r['outside_vae'] for r in chosen]):.1f} |")
    return lines


def format_inpaint_table(rows: list[dict]) -> str:
    lines = inpaint_rows_table(rows)
    colour_rate = np.mean([r["colour_ok"] and r["shape_ok"] for r in rows])
    outside = np.mean([r["outside"] for r in rows])
    verdict = "PASS" if colour_rate >= INPAINT_PASS_RATE and outside < OUTSIDE_BOUND else "FAIL"
    lines.append(f"\n(a) {verdict}: asked shape and colour in the hole {colour_rate:.1%} "
                 f"(bar {INPAINT_PASS_RATE:.0%}), "
                 f"mean abs diff outside the hole {outside:.1f}/255 (bound {OUTSIDE_BOUND:.0f})")
    return "\n".join(lines)


def depth_cases(size: int = 64) -> list[tuple[Scene, str, str]]:
    """36 (scene, prompt, asked colour): every colour x shape x background, the prompt names another colour."""
    colours = list(COLOURS)
    cases = []
    for k, (colour, shape, background) in enumerate((c, s, b) for c in colours for s in SHAPES for b in BACKGROUNDS):
        scene = draw_scene(colour, shape, background, seed=700 + k, size=size)
        asked = shifted_name(colours, colour, 1 + k % 5)
        cases.append((scene, caption(asked, shape, background), asked))
    return cases


def evaluate_depth(pipe, strength: float, true_depth: bool, steps: int = 25, guidance_scale: float = 7.5,
                   seeds: int = 1) -> dict:
    cases = depth_cases(pipe.unet.config.sample_size * pipe.vae_scale_factor) * seeds
    depth_map = torch.from_numpy(np.stack([s.depth for s, _, _ in cases])) if true_depth else None
    with torch.no_grad():
        outputs = _uint8(_ddim(pipe)(
            prompt=[p for _, p, _ in cases], image=[s.pil() for s, _, _ in cases], depth_map=depth_map,
            strength=strength, num_inference_steps=steps, guidance_scale=guidance_scale, output_type="np",
            generator=[torch.Generator().manual_seed(i) for i in range(len(cases))]).images)
    ious, colour_ok, kept_ok, shape_ok = [], [], [], []
    for (scene, _, asked), output in zip(cases, outputs):
        found = inspect(output)
        before = inspect(scene.image)["mask"]
        ious.append((found["mask"] & before).sum() / max(1, (found["mask"] | before).sum()))
        colour_ok.append(found["colour"] == asked)
        kept_ok.append(found["colour"] == scene.colour)
        shape_ok.append(found["shape"] == scene.shape)
    return dict(strength=strength, depth="true depth_map" if true_depth else "estimator", n=len(cases),
                iou=float(np.mean(ious)), iou_ok=float(np.mean(np.asarray(ious) >= IOU_BOUND)),
                colour=float(np.mean(colour_ok)), kept=float(np.mean(kept_ok)), shape=float(np.mean(shape_ok)),
                outputs=outputs)


def format_depth_table(results: list[dict]) -> str:
    lines = ["| depth from | strength | pictures | mean IoU of shape masks | IoU >= 0.6 | prompt's colour "
             "| input's colour kept | shape kept |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['depth']} | {r['strength']} | {r['n']} | {r['iou']:.2f} | {r['iou_ok']:.1%} "
                     f"| {r['colour']:.1%} | {r['kept']:.1%} | {r['shape']:.1%} |")
    full, low = results[0], results[1]  # DEPTH_ROWS' order: strength 1.0, then LOW_STRENGTH, both estimated
    passed = full["iou"] >= IOU_BOUND and full["colour"] >= DEPTH_COLOUR_RATE and low["kept"] >= KEPT_COLOUR_RATE
    lines.append(f"\n(b) {'PASS' if passed else 'FAIL'}: at strength 1.0 mean IoU {full['iou']:.2f} (bar {IOU_BOUND}), "
                 f"prompt's colour {full['colour']:.1%} (bar {DEPTH_COLOUR_RATE:.0%}); at strength {low['strength']} "
                 f"input's colour kept {low['kept']:.1%} (bar {KEPT_COLOUR_RATE:.0%})")
    return "\n".join(lines)


def stepper_difference(pipe, mode: str, steps: int = 25, guidance_scale: float = 7.5) -> float:
    """Largest pixel difference (0..255) between stepviz's Stepper and the pipeline on the first case."""
    from stepviz import Stepper

    if mode == "inpaint":
        case = inpaint_cases(pipe.unet.config.sample_size * pipe.vae_scale_factor)[0]
        inputs = dict(prompt=case.prompt, image=case.scene.pil(),
                      mask_image=Image.fromarray((case.hole * 255).astype(np.uint8)))
    else:
        scene, prompt, _ = depth_cases(pipe.unet.config.sample_size * pipe.vae_scale_factor)[0]
        inputs = dict(prompt=prompt, image=scene.pil())
    pipe = _ddim(pipe)
    with torch.no_grad():
        expected = pipe(**inputs, num_inference_steps=steps, guidance_scale=guidance_scale,
                        generator=torch.Generator().manual_seed(0)).images[0]
    stepper = Stepper(pipe, seed=0, num_inference_steps=steps, guidance_scale=guidance_scale, scheduler="ddim",
                      mode="depth2img" if mode == "depth" else mode, **inputs)
    stepper.run()
    return float(np.abs(np.asarray(stepper.image(), dtype=float) - np.asarray(expected, dtype=float)).max())


def save_grid(images: list[np.ndarray], path, columns: int = 12) -> None:
    rows = -(-len(images) // columns)
    size = images[0].shape[0]
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        grid[(i // columns) * size:(i // columns + 1) * size, (i % columns) * size:(i % columns + 1) * size] = image
    Image.fromarray(grid).save(path)


def main(argv: list[str] | None = None) -> None:
    from stepviz import load_pipeline

    parser = argparse.ArgumentParser(prog="python -m training.evaluate_variants",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--inpaint", default="toy-inpaint", help="inpainting model (name or folder); 'none' skips")
    parser.add_argument("--depth", default="toy-depth", help="Depth2Img model (name or folder); 'none' skips")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--seeds", type=int, default=4, help="runs of each case set, new seeds each run")
    parser.add_argument("--grids", help="folder to save the output pictures as grids")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: must be 1 or more")
    torch.set_num_threads(args.threads)
    if args.grids:
        Path(args.grids).mkdir(parents=True, exist_ok=True)
    if args.inpaint != "none":
        pipe = load_pipeline(args.inpaint)
        rows = evaluate_inpaint(pipe, args.steps, args.guidance, seeds=args.seeds)
        print(f"## (a) inpainting: {args.inpaint}, {args.steps} DDIM steps, guidance {args.guidance}, "
              f"{args.seeds} seed(s) per case\n")
        print(format_inpaint_table(rows), flush=True)
        print(f"stepviz.Stepper(mode='inpaint') vs the pipeline, first case: largest pixel difference "
              f"{stepper_difference(pipe, 'inpaint', args.steps, args.guidance):.0f}/255")
        if args.grids:
            save_grid([r["output"] for r in rows], Path(args.grids) / "inpaint.png")
    if args.depth != "none":
        pipe = load_pipeline(args.depth)
        results = [evaluate_depth(pipe, strength, true_depth, args.steps, args.guidance, args.seeds)
                   for strength, true_depth in DEPTH_ROWS]
        print(f"\n## (b) Depth2Img: {args.depth}, {args.steps} DDIM steps, guidance {args.guidance}, "
              f"{args.seeds} seed(s) per case\n")
        print(format_depth_table(results), flush=True)
        print(f"stepviz.Stepper(mode='depth2img') vs the pipeline, first case: largest pixel difference "
              f"{stepper_difference(pipe, 'depth', args.steps, args.guidance):.0f}/255")
        if args.grids:
            for r in results:
                save_grid(list(r["outputs"]), Path(args.grids) / f"depth_{r['depth'].split()[0]}_{r['strength']}.png")


if __name__ == "__main__":
    main()
