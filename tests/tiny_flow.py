"""Tiny random SD3 and FLUX.1 pipelines built in code (no network), as diffusers' own tests build theirs.

Every module is put in eval mode: built without from_pretrained, transformers' modules start in training mode
and T5's dropout would make each call differ. The project's CLIP tokenizer stands in for T5's (any tokenizer
works for the pipelines: they only ask it for ids). Pictures 32 x 32 px, VAE scale 4: 8 x 8 latents of 16
channels (FLUX.1: 16 tokens of 64).
"""

from __future__ import annotations

import torch

from tiny import tokenizer_folder

LATENT_CHANNELS = 16
SIZE = 32
# SD3 medium's and FLUX.1-dev's scheduler configs (their model folders' scheduler_config.json)
SD3_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)
FLUX_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                      max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)


def _vae(shift_factor: float, scaling_factor: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=(8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                         layers_per_block=1, norm_num_groups=4, sample_size=SIZE, shift_factor=shift_factor,
                         scaling_factor=scaling_factor, use_quant_conv=False, use_post_quant_conv=False).eval()


def _clip(tokenizer, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _t5(tokenizer, width: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=width, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.1)).eval()


def tiny_sd3_components(seed: int = 0, t5: bool = True, scheduler=None, inpainting: bool = False) -> dict:
    """inpainting: a 33-channel transformer reading [x_t, m, E(masked image)], 16 + 1 + 16 channels."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder())
    in_channels = 2 * LATENT_CHANNELS + 1 if inpainting else LATENT_CHANNELS
    transformer = SD3Transformer2DModel(sample_size=SIZE // 4, patch_size=1, in_channels=in_channels,
                                        out_channels=LATENT_CHANNELS, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16,
                                        pooled_projection_dim=32, pos_embed_max_size=16).eval()
    return dict(transformer=transformer, vae=_vae(0.0609, 1.5035),  # SD3's VAE factors
                text_encoder=_clip(tokenizer, True), tokenizer=tokenizer,
                text_encoder_2=_clip(tokenizer, True), tokenizer_2=tokenizer,
                text_encoder_3=_t5(tokenizer) if t5 else None, tokenizer_3=tokenizer if t5 else None,
                scheduler=scheduler or FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER))


def tiny_flux_components(seed: int = 0, guidance_embeds: bool = True, scheduler=None) -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder())
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=LATENT_CHANNELS * 4, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=16,
                                         guidance_embeds=guidance_embeds, axes_dims_rope=(4, 4, 8)).eval()
    return dict(transformer=transformer, vae=_vae(0.1159, 0.3611),  # FLUX.1's VAE factors
                text_encoder=_clip(tokenizer, False), tokenizer=tokenizer,
                text_encoder_2=_t5(tokenizer), tokenizer_2=tokenizer,
                scheduler=scheduler or FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER))


def tiny_flow_pipeline(cls_name: str, **kwargs):
    import diffusers

    build = tiny_flux_components if cls_name.startswith("Flux") else tiny_sd3_components
    pipe = getattr(diffusers, cls_name)(**build(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe
