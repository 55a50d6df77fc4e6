"""The least memory a run of a given picture size needs, and the largest size that fits.

The estimate counts three things that grow with the picture (a floor: the weights, torch and the
libraries come on top):
  - the VAE decode of one picture: at each decoder resolution level l (l = 0 at full size) about
    DECODE_TENSORS activations of vae_channels[l] channels at 1/4**l of the pixels are alive at once;
  - one UNet call on the CFG batch of 2: UNET_TENSORS activations per resolution level, at latent size;
  - the records and snapshots kept for rewinding: RECORD_TENSORS latent-size tensors per step.
DECODE_TENSORS and UNET_TENSORS were measured on the toy model (peak resident memory of one step and
one decode at 512x512 and 1024x1024, CPU, torch 2.13: about 700 bytes per pixel for its decoder with
widths 16/32/64/64). Attention is not counted quadratically: torch's scaled_dot_product_attention does not
hold the whole score matrix (the measured growth from 512 to 1024 was ~3x, not 16x).
"""

from __future__ import annotations

import os

from .checks import StepvizInputError, run_size, vae_scale_factor

DECODE_TENSORS = 6
UNET_TENSORS = 16
RECORD_TENSORS = 8
TOY_VAE_CHANNELS = (16, 32, 64, 64)  # the smallest decoder stepviz ships
TOY_UNET_CHANNELS = (64, 128)


def _pyramid(channels, pixels: float) -> float:
    """Channel-pixels over the resolution levels: channels[l] at pixels / 4**l."""
    return sum(c * pixels / 4**level for level, c in enumerate(channels))


def run_bytes(height: int, width: int, steps: int, vae_channels=TOY_VAE_CHANNELS,
              unet_channels=TOY_UNET_CHANNELS, latent_channels: int = 4, bytes_per_float: int = 4) -> int:
    """At least this many bytes for a run of `steps` steps at height x width (see the module's notes)."""
    scale = vae_scale_factor(vae_channels)
    pixels, latent_pixels = height * width, (height / scale) * (width / scale)
    decode = DECODE_TENSORS * _pyramid(vae_channels, pixels)
    unet = 2 * UNET_TENSORS * _pyramid(unet_channels, latent_pixels)
    records = RECORD_TENSORS * latent_channels * latent_pixels * max(steps, 1)
    return int(bytes_per_float * (decode + unet + records))


def available_bytes(device=None) -> int:
    """Memory this process could still get: free memory on a CUDA device; else MemAvailable on Linux, else the
    machine's physical memory."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse on a guess


def largest_square(steps: int, budget: int, **widths) -> int:
    """The largest side (a multiple of 8) of a square picture whose run fits in `budget` bytes."""
    low, high = 0, 1 << 20
    while low < high:
        mid = (low + high + 1) // 2
        if run_bytes(mid * 8, mid * 8, steps, **widths) <= budget:
            low = mid
        else:
            high = mid - 1
    return low * 8


def check_run_memory(name: str, height: int, width: int, steps: int, *, available: int | None = None,
                     **widths) -> None:
    """Refuse a size whose run cannot fit in memory, before anything is allocated."""
    needed = run_bytes(height, width, steps, **widths)
    budget = available_bytes() if available is None else available
    if needed > budget:
        side = largest_square(steps, budget, **widths)
        raise StepvizInputError(
            f"{name} {height}x{width} needs at least {_gib(needed)} of memory (VAE decode, UNet activations and "
            f"{steps} steps of records) but {_gib(budget)} is available: use at most about "
            f"{side}x{side}")


# Multiply-adds per second of one attention call (torch's scaled_dot_product_attention): measured 17-19e9 on this
# project's 2-core CPU for 4k-16k tokens of 64 channels; a GPU is taken as about a thousand times faster.
ATTENTION_WORK_PER_SECOND = {"cpu": 1.5e10, "mps": 1e12, "cuda": 1e13}
LONGEST_CALL_SECONDS = 30  # Ctrl-C waits for the call in progress: none may take longer


def attention_levels(down_block_types) -> tuple[int, ...]:
    """The UNet's resolution levels with self-attention: its attention down blocks, and the lowest (mid block)."""
    found = {level for level, kind in enumerate(down_block_types) if "Attn" in kind}
    return tuple(sorted(found | {len(down_block_types) - 1}))


def largest_attention_work(height: int, width: int, scale: int, unet_channels, levels, vae_channels) -> float:
    """Multiply-adds of the largest single attention call of a step or a decode: tokens^2 x channels, twice
    (scores, then the weighted sum), for the UNet's CFG batch of 2 at each attention level, and the VAE
    decoder's mid-block attention over every latent pixel."""
    tokens = (height / scale) * (width / scale)
    unet = max((2 * 2 * (tokens / 4**level) ** 2 * unet_channels[level] for level in levels), default=0.0)
    return max(unet, 2 * tokens**2 * vae_channels[-1])


def check_step_work(name: str, height: int, width: int, device, *, scale: int = 8, unet_channels=TOY_UNET_CHANNELS,
                    levels=(0, 1), vae_channels=TOY_VAE_CHANNELS) -> None:
    """Refuse a size at which one attention call would run longer than Ctrl-C can wait for it."""
    kind = str(device or "cpu").split(":")[0]
    rate = ATTENTION_WORK_PER_SECOND.get(kind, ATTENTION_WORK_PER_SECOND["cpu"])
    work = largest_attention_work(height, width, scale, unet_channels, levels, vae_channels)
    if work / rate <= LONGEST_CALL_SECONDS:
        return
    side = height
    while side > 8 and largest_attention_work(side, side, scale, unet_channels, levels, vae_channels) / rate > \
            LONGEST_CALL_SECONDS:
        side = int(side * 0.9) // 8 * 8
    raise StepvizInputError(
        f"{name} {height}x{width} makes one attention call of about {work:.1e} multiply-adds (tokens^2 x channels), "
        f"about {work / rate:,.0f} s on the {kind} that Ctrl-C cannot interrupt (at most {LONGEST_CALL_SECONDS} s "
        f"is allowed): use at most about {side}x{side}")


def _gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"


def check_pipeline_run(pipe, mode: str, height, width, image, steps: int) -> None:
    """check_run_memory for a loaded pipeline: its widths, its device's free memory, the size the run makes."""
    scale = pipe.vae_scale_factor
    size = getattr(image, "size", None)
    if hasattr(image, "shape"):  # a tensor: pixels, or latents already (diffusers' image processors pass those on)
        latents = image.ndim >= 3 and image.shape[-3] == pipe.vae.config.latent_channels
        size = (image.shape[-1] * (scale if latents else 1), image.shape[-2] * (scale if latents else 1))
    height, width = run_size(mode, height, width, size, pipe.unet.config.sample_size * scale, scale)
    check_run_memory("a picture of", height, width, steps, available=available_bytes(pipe._execution_device),
                     vae_channels=tuple(pipe.vae.config.block_out_channels),
                     unet_channels=tuple(pipe.unet.config.block_out_channels),
                     latent_channels=pipe.vae.config.latent_channels, bytes_per_float=pipe.unet.dtype.itemsize)
    check_step_work("a picture of", height, width, pipe._execution_device, scale=scale,
                    unet_channels=tuple(pipe.unet.config.block_out_channels),
                    levels=attention_levels(pipe.unet.config.down_block_types),
                    vae_channels=tuple(pipe.vae.config.block_out_channels))
