"""Input validation: every bad value gets one clear line naming it and what is allowed."""

from __future__ import annotations

import math
from pathlib import Path

MODES = ("txt2img", "img2img", "inpaint", "depth2img")
INPAINT_NOISES = ("fixed", "fresh")  # the DIY blend's re-noising: one noise for the run, or new noise every step
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")  # diffusers' timestep_spacing values

# UNet input channels each mode accepts (inpaint: DIY blend on 4, the inpainting model on 9).
MODE_CHANNELS = {"txt2img": (4,), "img2img": (4,), "inpaint": (4, 9), "depth2img": (5,)}


class StepvizInputError(ValueError):
    """A value given to stepviz is not allowed. The message names the value and the rule."""


def check_choice(key: str, value, allowed, what: str = "values") -> None:
    """`value` is one of `allowed`, else one line naming the key, the value and the allowed ones."""
    if value not in allowed:
        raise StepvizInputError(f"{key}={value!r} is unknown: allowed {what} are {', '.join(allowed)}")


def check_mode_name(mode: str) -> None:
    check_choice("mode", mode, MODES, "modes")


def check_size(name: str, value: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value % 8:
        raise StepvizInputError(
            f"{name}={value!r} is not allowed: it must be a positive multiple of 8 "
            f"(the VAE downsamples by 8), e.g. 64, 512 or 768"
        )


def check_steps(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StepvizInputError(f"num_inference_steps={value!r} is not allowed: it must be an integer >= 1")


def check_guidance(value: float) -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise StepvizInputError(f"guidance_scale={value!r} is not allowed: it must be a finite number") from None
    if not math.isfinite(scale):
        raise StepvizInputError(f"guidance_scale={value!r} is not allowed: it must be a finite number")
    return scale


def check_shift(value: float | None) -> None:
    """A flow schedule's fixed shift s: a finite number > 0 (1: no shift; SD3: 3)."""
    if value is None:
        return
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StepvizInputError(f"shift={value!r} is not allowed: it must be a number > 0 (1: no shift; SD3: 3)")


def check_strength(value: float | None) -> None:
    if value is None:
        return
    try:
        ok = 0.0 <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StepvizInputError(f"strength={value!r} is not allowed: it must be a number in [0, 1]")


def check_pipeline(class_name: str, supported: tuple[str, ...]) -> None:
    if class_name not in supported:
        raise StepvizInputError(f"a {class_name} cannot be stepped: stepviz supports {', '.join(supported)}")


def check_strength_leaves_a_step(strength: float, steps: int) -> None:
    """img2img-like runs take int(steps * strength) steps (diffusers' get_timesteps): at least one."""
    if min(int(steps * strength), steps) < 1:
        raise StepvizInputError(
            f"strength={strength} with {steps} steps leaves no step to run: "
            f"raise strength or num_inference_steps so that int(steps * strength) >= 1")


def check_steps_fit(steps: int, num_train_timesteps: int) -> None:
    """A scheduler cannot take more steps than the timesteps it was trained with (diffusers' set_timesteps)."""
    if steps > num_train_timesteps:
        raise StepvizInputError(
            f"num_inference_steps={steps} is not allowed: this model's scheduler was trained with "
            f"{num_train_timesteps} timesteps, so at most {num_train_timesteps} steps")


def check_timesteps_trained(timesteps, steps: int, config) -> None:
    """Every step must land on a trained timestep (0 .. num_train_timesteps - 1).

    diffusers' "leading" spacing adds steps_offset after spacing the steps, so as many steps as
    trained timesteps put the first one at t = num_train_timesteps, which has no noise level.
    """
    num_train_timesteps = config["num_train_timesteps"]
    last = max((float(t) for t in timesteps), default=0.0)
    if last >= num_train_timesteps:
        spacing = config.get("timestep_spacing", "leading")
        offset = config.get("steps_offset", 0)
        raise StepvizInputError(
            f"num_inference_steps={steps} puts a step at t={last:g} (timestep_spacing={spacing!r} adds "
            f"steps_offset={offset}), past the last trained timestep {num_train_timesteps - 1}: "
            f"use at most {steps - 1} steps, or timestep_spacing='trailing'")


# which modes use each input (txt2img takes none of them: given anyway, it is refused, not ignored)
INPUT_MODES = {"image": ("img2img", "inpaint", "depth2img"), "mask_image": ("inpaint",),
               "strength": ("img2img", "inpaint", "depth2img"), "depth_map": ("depth2img",)}


def check_mode_inputs(mode: str, **inputs) -> None:
    """Refuse an input the mode would silently ignore (strength or a picture in txt2img, a mask in img2img)."""
    for name, value in inputs.items():
        if value is not None and mode not in INPUT_MODES[name]:
            modes = " or ".join(repr(m) for m in INPUT_MODES[name])
            raise StepvizInputError(f"{name} is used by mode={modes} only, not mode={mode!r}: drop it or "
                                    "pick one of those modes")


def vae_scale_factor(vae_channels) -> int:
    """Pixels per latent cell along a side: the VAE halves the picture at each level but the last (diffusers'
    pipelines compute their `vae_scale_factor` so)."""
    return 2 ** (len(vae_channels) - 1)


def run_size(mode: str, height: int | None, width: int | None, picture_size: tuple[int, int] | None,
             default_side: int, scale: int) -> tuple[int, int]:
    """The (height, width) a run makes, as diffusers' pipelines choose it: img2img and depth2img take the
    input picture's size rounded down to a multiple of the VAE's `scale` (depth2img ignores height/width);
    txt2img and inpaint default to the UNet's sample size. Refuses a picture too small to make one latent."""
    if mode in ("img2img", "depth2img") and picture_size is not None and \
            (mode == "depth2img" or height is None or width is None):
        picture_width, picture_height = picture_size
        if picture_width < scale or picture_height < scale:
            raise StepvizInputError(f"image of {picture_width}x{picture_height} pixels is too small: mode={mode!r} "
                                    f"takes its size from the picture, which must be at least {scale}x{scale}")
        if mode == "depth2img":
            height = width = None
        height = height or picture_height // scale * scale
        width = width or picture_width // scale * scale
    return height or default_side, width or default_side


def check_mode(mode: str, unet_in_channels: int, sdxl: bool = False) -> None:
    check_mode_name(mode)
    if sdxl and mode == "depth2img":
        raise StepvizInputError("mode='depth2img' needs an SD 2 depth model; SDXL runs txt2img, img2img and inpaint")
    allowed = MODE_CHANNELS[mode]
    if unet_in_channels not in allowed:
        fits = [m for m, ch in MODE_CHANNELS.items() if unet_in_channels in ch]
        raise StepvizInputError(
            f"mode={mode!r} needs a UNet with {' or '.join(map(str, allowed))} input channels, "
            f"but this model's UNet takes {unet_in_channels}; modes that fit it: {', '.join(fits) or 'none'}"
        )


def check_prompts(prompt, negative_prompt, prompt_embeds=None) -> None:
    """The prompt is text (None only with prompt_embeds given, as diffusers allows); the negative prompt text or
    None."""
    if not (isinstance(prompt, str) or (prompt is None and prompt_embeds is not None)):
        raise StepvizInputError(f"prompt={prompt!r} is not allowed: give the prompt as text (a str), or prompt_embeds")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise StepvizInputError(f"negative_prompt={negative_prompt!r} is not allowed: give text (a str) or None")


def check_scheduler_argument(scheduler, names) -> None:
    """A run's scheduler argument: None (the pipeline's own), a name (checked by the caller against `names`) or a
    diffusers scheduler instance, anything with set_timesteps."""
    if scheduler is not None and not isinstance(scheduler, str) and not hasattr(scheduler, "set_timesteps"):
        raise StepvizInputError(f"scheduler={scheduler!r} is not allowed: give a name ({', '.join(names)}), a "
                                "diffusers scheduler, or None for the pipeline's own")


def check_capture_attention(value) -> None:
    if value not in (False, True, "layers"):
        raise StepvizInputError(f"capture_attention={value!r} is not allowed: use False, True or 'layers' (also "
                                "each layer's map)")


def check_seed(value: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise StepvizInputError(f"seed={value!r} is not allowed: it must be an integer in [0, 2**63)")


def load_image(name: str, value, mode: str):
    """Open `value` (a path or a PIL image) for `name`, or fail naming what is missing."""
    from PIL import Image, UnidentifiedImageError

    if value is None:
        raise StepvizInputError(f"mode={mode!r} needs {name}=: give a picture (a file path or a PIL image)")
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if hasattr(value, "shape") and not isinstance(value, (str, Path)):
        return value  # a tensor or array: the image processor checks it
    path = Path(value)
    if not path.is_file():
        raise StepvizInputError(f"{name}={str(value)!r}: no such file")
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except Image.DecompressionBombError:
        raise StepvizInputError(f"{name}={str(value)!r} is too large to open safely (over "
                                f"{Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise StepvizInputError(f"{name}={str(value)!r} is not a readable image ({exc.__class__.__name__})") from None


def depth_tensor(picture):
    """A depth picture (a path or a PIL image; bright = near) as the float tensor [1, H, W] the engine takes."""
    import numpy as np
    import torch
    from PIL import Image

    if not isinstance(picture, Image.Image):
        with Image.open(picture) as opened:
            picture = opened.convert("L")
    return torch.from_numpy(np.asarray(picture.convert("F"), dtype=np.float32) / 255.0)[None]


# The rules of a run's values that need no model, under the names the command line and lesson files give them.
# check_run applies them all (the Stepper and RunSettings.validate); the lesson reader applies them one key at
# a time, so that its error names the file and the key's line.
RUN_RULES = {
    "height": lambda value: check_size("height", value),
    "width": lambda value: check_size("width", value),
    "steps": check_steps,
    "guidance_scale": lambda value: value is None or check_guidance(value),
    "strength": check_strength,
    "seed": check_seed,
    "mode": check_mode_name,
    "inpaint_noise": lambda value: check_choice("inpaint_noise", value, INPAINT_NOISES),
    "timestep_spacing": lambda value: value is None or check_choice("timestep_spacing", value, TIMESTEP_SPACINGS),
    "shift": check_shift,
}


def check_run(*, mode: str, steps: int, strength: float | None = None, image=None, mask_image=None, depth_map=None,
              **values) -> None:
    """Every rule of a run that needs no model: each value's (RUN_RULES), then the ones between values (the
    mode's pictures, a strength that leaves a step). Raises StepvizInputError with one line."""
    given = {"mode": mode, "steps": steps, "strength": strength, **values}
    for key, rule in RUN_RULES.items():
        if key in given:
            rule(given[key])
    check_mode_inputs(mode, image=image, mask_image=mask_image, strength=strength, depth_map=depth_map)
    if strength is not None:
        check_strength_leaves_a_step(strength, steps)
