"""A diffusers pipeline's weights written as one single-file checkpoint with the original (LDM) key names.

The inverse of diffusers' single-file conversion, for the layouts the tests build (SD 1.x, and SDXL with
its OpenCLIP second encoder). It lets the tests make the kind of file model sites share, from tiny random
components, and check that loading it gives the same weights back.
"""

from __future__ import annotations

import re

import torch

UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
               ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _rename(rest: str, pairs) -> str:
    head, _, leaf = rest.rpartition(".")
    for new, old in pairs:
        if head == new or head.startswith(new + "."):
            head = old + head[len(new):]
            break
    return f"{head}.{leaf}" if head else leaf


def unet_keys(unet) -> dict[str, torch.Tensor]:
    per_level = unet.config.layers_per_block + 1
    out = {}
    for key, value in unet.state_dict().items():
        m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key)
        u = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
        mid = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            level, part, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            if part == "downsamplers":
                name = f"input_blocks.{(level + 1) * per_level}.0.op.{rest.removeprefix('conv.')}"
            else:
                index = 1 + level * per_level + j
                name = f"input_blocks.{index}.{0 if part == 'resnets' else 1}." + (
                    _rename(rest, UNET_RESNET) if part == "resnets" else rest)
        elif u:
            level, part, j, rest = int(u[1]), u[2], int(u[3]), u[4]
            if part == "upsamplers":
                has_attention = f"up_blocks.{level}.attentions.0.proj_in.weight" in unet.state_dict()
                name = f"output_blocks.{level * per_level + per_level - 1}.{2 if has_attention else 1}.{rest}"
            else:
                name = f"output_blocks.{level * per_level + j}.{0 if part == 'resnets' else 1}." + (
                    _rename(rest, UNET_RESNET) if part == "resnets" else rest)
        elif mid:
            part, j, rest = mid[1], int(mid[2]), mid[3]
            index = 1 if part == "attentions" else 2 * j
            name = f"middle_block.{index}." + (_rename(rest, UNET_RESNET) if part == "resnets" else rest)
        else:
            name = (key.replace("time_embedding.linear_1", "time_embed.0").replace("time_embedding.linear_2",
                    "time_embed.2").replace("conv_in", "input_blocks.0.0").replace("conv_norm_out", "out.0")
                    .replace("conv_out", "out.2").replace("add_embedding.linear_1", "label_emb.0.0")
                    .replace("add_embedding.linear_2", "label_emb.0.2"))
        out["model.diffusion_model." + name] = value
    return out


def vae_keys(vae) -> dict[str, torch.Tensor]:
    levels = len(vae.config.up_block_types)
    out = {}
    for key, value in vae.state_dict().items():
        name = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets", r"encoder.down.\1.block", name)
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", name)
        name = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets",
                      lambda g: f"decoder.up.{levels - 1 - int(g[1])}.block", name)
        name = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0",
                      lambda g: f"decoder.up.{levels - 1 - int(g[1])}.upsample", name)
        name = re.sub(r"mid_block\.resnets\.(\d+)", lambda g: f"mid.block_{int(g[1]) + 1}", name)
        if "mid_block.attentions.0." in name:
            rest = name.split("mid_block.attentions.0.")[1]
            name = name.split("mid_block.attentions.0.")[0] + "mid.attn_1." + _rename(rest, VAE_ATTENTION)
            if value.ndim == 2:  # the original stores these projections as 1x1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + name] = value
    return out


def text_encoder_keys(text_encoder) -> dict[str, torch.Tensor]:
    """CLIP ViT-L as SD 1.x stores it: transformers' CLIPTextModel names under cond_stage_model.transformer.text_model
    (transformers 5 leaves the text_model. prefix out of the state dict; the original files have it)."""
    return {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
            for k, v in text_encoder.state_dict().items() if not k.endswith("position_ids")}


OPEN_CLIP_NAMES = (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                   ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"))


def open_clip_keys(encoder, prefix: str) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection in OpenCLIP's names (SDXL's second encoder): q, k, v in one in_proj,
    the projection transposed."""
    out, qkv = {}, {}
    for key, value in encoder.state_dict().items():
        key = key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        if key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.removeprefix("final_layer_norm.")] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        else:
            layer, rest = re.match(r"encoder\.layers\.(\d+)\.(.*)", key).groups()
            m = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
            if m:
                qkv.setdefault((layer, m[2]), {})[m[1]] = value
                continue
            for new, old in OPEN_CLIP_NAMES:
                rest = rest.replace(new, old)
            out[f"{prefix}transformer.resblocks.{layer}.{rest}"] = value
    for (layer, kind), parts in qkv.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts[c] for c in "qkv"])
    return out


def write_single_file(pipe, path, open_clip: bool = False) -> None:
    """UNet, VAE and text encoder(s) under their original prefixes, in one safetensors file: SD 1.x's layout
    (SD 2.x's with open_clip=True: the text encoder in OpenCLIP's names under cond_stage_model.model), or
    SDXL's (CLIP ViT-L under conditioner.embedders.0, the OpenCLIP encoder under conditioner.embedders.1)."""
    from safetensors.torch import save_file

    tensors = {**unet_keys(pipe.unet), **vae_keys(pipe.vae)}
    if getattr(pipe, "text_encoder_2", None) is not None:
        clip = text_encoder_keys(pipe.text_encoder)
        tensors.update({k.replace("cond_stage_model.", "conditioner.embedders.0."): v for k, v in clip.items()})
        tensors.update(open_clip_keys(pipe.text_encoder_2, "conditioner.embedders.1.model."))
    elif open_clip:
        tensors.update(open_clip_keys(pipe.text_encoder, "cond_stage_model.model."))
    else:
        tensors.update(text_encoder_keys(pipe.text_encoder))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
