"""The pictures a step is shown with (pure functions over StepRecords; no Textual).

Only what is shown is drawn: a "full" preview costs a VAE decode per picture, "approx" is a
small matrix product, "channels" a grey tiling. Torch is imported when a picture is drawn (in a
worker), so that importing the widgets does not delay the app's first frame.
"""

from __future__ import annotations

from PIL import Image

from .channel_pictures import mask_picture

BLEND_ROLES = ("mask", "background", "generated", "blended")


def step_pictures(pipe, record, kind: str, initial_latents=None) -> dict[str, Image.Image]:
    """x_t (after the step) and x0-hat of a record; before any step, the starting noise only.

    In inpaint (DIY blend) mode also the blend: mask, re-noised original, generated part, result.
    """
    import torch

    from ..engine.noise_scale import to_vp_scale
    from .preview import decode_images, preview

    if record is None:
        if initial_latents is None:
            return {}
        return {"x_t": preview(pipe, initial_latents, kind)}
    family, sigma = record.family, record.sigma_next
    latents = {"x_t": (record.latents, family, sigma), "x0": (record.pred_original_sample, "vp", 0.0)}
    blend = record.background is not None and record.mask is not None
    if blend:
        # records without the pre-blend latents: the generated part is what shows inside the mask
        generated = getattr(record, "latents_before_blend", None)
        if generated is None:
            generated = record.latents * record.mask
        latents.update(background=(record.background, family, sigma), generated=(generated, family, sigma))
    if kind == "full":  # one VAE call for all of them
        batch = torch.cat([to_vp_scale(x, fam, sig) for x, fam, sig in latents.values()])
        pictures = dict(zip(latents, decode_images(pipe, batch)))
    else:
        pictures = {role: preview(pipe, x, kind, fam, sig) for role, (x, fam, sig) in latents.items()}
    if blend:
        pictures.update(mask=mask_picture(record.mask), blended=pictures["x_t"])
    return pictures
