"""Tiny random Stable Diffusion components built in code (no network), like diffusers' own tests."""

from __future__ import annotations

import functools
import tempfile

import torch

SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    steps_offset=1, set_alpha_to_one=False, clip_sample=False, skip_prk_steps=True,
)


@functools.cache
def tokenizer_folder() -> str:
    from training.tokenizer import write_tokenizer

    folder = tempfile.mkdtemp(prefix="stepviz-tiny-tokenizer-")
    write_tokenizer(folder)
    return folder


def tiny_components(unet_in_channels: int = 4, seed: int = 0, prediction_type: str = "epsilon",
                    sd2: bool = False, time_cond_proj_dim: int | None = None) -> dict:
    """sd2=True: SD 2.x's UNet layout (linear projections, upcast attention); prediction_type as its scheduler says.
    time_cond_proj_dim: a guidance embedding's width (an LCM-distilled UNet)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=unet_in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, attention_head_dim=4,
        norm_num_groups=4, use_linear_projection=sd2, upcast_attention=sd2, time_cond_proj_dim=time_cond_proj_dim,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, sample_size=32,
    )
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder())
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    return dict(unet=unet.eval(), vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
                scheduler=PNDMScheduler.from_config({**SCHEDULER_CONFIG, "prediction_type": prediction_type}),
                safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)


def tiny_pipeline(cls_name: str = "StableDiffusionPipeline", **kwargs):
    import diffusers

    pipe = getattr(diffusers, cls_name)(**tiny_components(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def scene_image(size: int = 32, seed: int = 0):
    """A small RGB picture with structure (not noise) for img2img / inpaint."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(200, 30 + seed, 40))
    return image


def square_mask(size: int = 32):
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle((size // 2, 0, size - 1, size // 2), fill=255)
    return mask


def tiny_sdxl_components(unet_in_channels: int = 4, seed: int = 0, time_cond_proj_dim: int | None = None) -> dict:
    """SDXL's layout at tiny width: two text encoders (the second with a projection), text_time conditioning."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=unet_in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=4, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 4 + 8, cross_attention_dim=16 + 24, norm_num_groups=4,
        time_cond_proj_dim=time_cond_proj_dim,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, sample_size=32, scaling_factor=0.13025,
    )
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder())
    config = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                  num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, hidden_act="gelu",
                  projection_dim=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(**config))
    # wider than the first, as in SDXL (768 / 1280): diffusers' single-file loader tells the two apart by width
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**{**config, "hidden_size": 24,
                                                                   "intermediate_size": 48}))
    scheduler = EulerDiscreteScheduler.from_config({**SCHEDULER_CONFIG, "timestep_spacing": "leading",
                                                    "interpolation_type": "linear"})
    return dict(unet=unet.eval(), vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
                text_encoder_2=text_encoder_2.eval(), tokenizer_2=tokenizer, scheduler=scheduler,
                image_encoder=None, feature_extractor=None)


def tiny_sdxl_pipeline(cls_name: str = "StableDiffusionXLPipeline", **kwargs):
    import diffusers

    pipe = getattr(diffusers, cls_name)(**tiny_sdxl_components(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_toy_base(root) -> None:
    """A tiny toy model (the trainers' components at their TINY sizes, 32 px) saved as a StableDiffusionPipeline
    folder in root/base, its tokenizer's source in root/tokenizer-src: the base a trainer's test starts from."""
    from diffusers import StableDiffusionPipeline

    from training import components
    from training.tokenizer import write_tokenizer

    torch.manual_seed(0)
    tokenizer = write_tokenizer(root / "tokenizer-src")
    StableDiffusionPipeline(
        vae=components.make_vae(components.TINY, 32),
        text_encoder=components.make_text_encoder(components.TINY, tokenizer),
        tokenizer=tokenizer, unet=components.make_unet(components.TINY, 32),
        scheduler=components.make_pipeline_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(root / "base", safe_serialization=True)
