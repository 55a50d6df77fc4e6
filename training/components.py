"""The toy model's parts: standard diffusers/transformers classes with small configs.

Two sizes: FULL for the shipped base model (its UNet 64/128, one layer per block), TINY for the CI smoke
test (seconds). The
scheduler copies SD 1.x's config (scaled_linear betas 0.00085..0.012, 1000 steps,
steps_offset 1, set_alpha_to_one False, clip_sample False).
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .tokenizer import MODEL_MAX_LENGTH


@dataclass(frozen=True)
class ToySizes:
    vae_channels: tuple[int, int, int, int]  # 4 blocks -> 3 downsamplings -> 8x
    vae_groups: int
    unet_channels: tuple[int, ...]
    unet_groups: int
    unet_heads: int  # diffusers' attention_head_dim is the number of heads
    text_width: int
    text_layers: int
    text_heads: int
    unet_layers: int = 1  # resnet (+ attention) layers per UNet block


FULL = ToySizes(
    vae_channels=(16, 32, 64, 64), vae_groups=8,
    unet_channels=(64, 128), unet_groups=16, unet_heads=4,
    text_width=64, text_layers=2, text_heads=4,
)
TINY = ToySizes(
    vae_channels=(4, 4, 8, 8), vae_groups=2,
    unet_channels=(16, 16), unet_groups=8, unet_heads=2,
    text_width=16, text_layers=1, text_heads=2,
)
LATENT_CHANNELS = 4
VAE_FACTOR = 8


def make_vae(sizes: ToySizes, image_size: int) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=sizes.vae_channels,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=sizes.vae_groups,
        sample_size=image_size,
        scaling_factor=1.0,  # per-channel normalisation is folded into quant_conv instead
    )


def make_text_encoder(sizes: ToySizes, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes.text_width,
        intermediate_size=sizes.text_width * 2,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        max_position_embeddings=MODEL_MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=sizes.text_width,
    )
    return CLIPTextModel(config)


def make_unet(sizes: ToySizes, image_size: int) -> UNet2DConditionModel:
    levels = len(sizes.unet_channels)
    down = ("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1)
    return UNet2DConditionModel(
        sample_size=image_size // VAE_FACTOR,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=sizes.unet_channels,
        layers_per_block=sizes.unet_layers,
        cross_attention_dim=sizes.text_width,
        attention_head_dim=sizes.unet_heads,
        norm_num_groups=sizes.unet_groups,
        # a pooled caption embedding is added to the time embedding, so every resnet
        # sees the prompt (FiLM-like), not only the cross-attention layers: colour and
        # background are global properties of the picture. Standard diffusers option;
        # the SD pipelines pass encoder_hidden_states exactly as before.
        addition_embed_type="text",
        addition_embed_type_num_heads=sizes.text_heads,
    )


SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    set_alpha_to_one=False,
    clip_sample=False,
    prediction_type="epsilon",
)


def make_train_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def make_pipeline_scheduler() -> DDIMScheduler:
    """The scheduler saved with the model: DDIM with SD 1.x's config (clip_sample false, so x0-hat is not
    clipped). Not PNDM, SD 1.x's own: on the toy at guidance 7.5 its 4-step extrapolation of the noise
    predictions gets colour and shape right in 20.8% of the evaluation set, DDIM in 95.8%
    (`python -m training.evaluate --scheduler pndm`)."""
    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    # SD 1.x's config carries skip_prk_steps: true, so that PNDMScheduler.from_config(...) runs PLMS alone as
    # SD does (without it PNDM starts with Runge-Kutta steps); DDIM keeps the key and ignores it
    scheduler.register_to_config(skip_prk_steps=True)
    return scheduler

