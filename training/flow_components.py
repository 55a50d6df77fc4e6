"""The toy flow model's parts: a small SD3 transformer beside the toy's VAE, tokenizer and (warm-started) text
encoder, and the FlowMatchEuler scheduler with SD3's shift.

StableDiffusion3Pipeline without T5 (text_encoder_3=None, as diffusers allows) builds the transformer's context
as [CLIP 1 | CLIP 2] hidden states along the features (2 x 64 = joint_attention_dim 128) followed by
`max_sequence_length` (256 by default) all-zero rows standing for T5, and the pooled projection as [pooled 1 |
pooled 2] (128). Both CLIP slots hold the same text encoder (one weight file) and the toy's tokenizer, read with
model_max_length FLOW_TOKENS (a toy caption is at most 9 tokens): 16 + 256 context rows.

The 256 zero rows are the same vector in every layer (no position embedding on the context stream, the same
projections for each), so in training they are one row whose attention logit carries log 256
(`CollapsedZeroRowsAttention`): the same numbers as 256 rows, at a fraction of the cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
from diffusers.models.attention_processor import JointAttnProcessor2_0
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

FLOW_TOKENS = 16  # the tokenizer's model_max_length for the flow model
T5_ROWS = 256  # StableDiffusion3Pipeline's default max_sequence_length: the zero rows standing for T5
SHIFT = 3.0  # SD3's shift of the sigmas (its scheduler config)
SHIFT_FACTOR = 0.0  # the toy VAE's latents are already normalised (scaling_factor 1); SD3 decodes z / s + shift


def make_flow_transformer(layers: int = 4, heads: int = 4, head_dim: int = 32, text_width: int = 64,
                          latent_side: int = 8) -> SD3Transformer2DModel:
    """An SD3 transformer over 8 x 8 x 4 toy latents, patch 1 (64 picture tokens)."""
    return SD3Transformer2DModel(
        sample_size=latent_side, patch_size=1, in_channels=4, out_channels=4, num_layers=layers,
        attention_head_dim=head_dim, num_attention_heads=heads, joint_attention_dim=2 * text_width,
        caption_projection_dim=heads * head_dim, pooled_projection_dim=2 * text_width,
        pos_embed_max_size=2 * latent_side,  # pictures up to 128 px
    )


def make_flow_text_encoder(toy_text_encoder: CLIPTextModel) -> CLIPTextModelWithProjection:
    """A CLIP text encoder with projection of the toy's sizes, its weights copied from the toy's (the projection,
    which the toy has not, starts as the identity)."""
    config = CLIPTextConfig(**{k: v for k, v in toy_text_encoder.config.to_dict().items()
                               if k not in ("architectures", "_name_or_path", "transformers_version")})
    model = CLIPTextModelWithProjection(config)
    model.text_model.load_state_dict(toy_text_encoder.state_dict(), strict=True)
    with torch.no_grad():
        model.text_projection.weight.copy_(torch.eye(config.projection_dim, config.hidden_size))
    return model


def make_flow_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)


def shifted(sigma: torch.Tensor, shift: float = SHIFT) -> torch.Tensor:
    """SD3's shift of a sigma in [0, 1]: shift s / (1 + (shift - 1) s), as FlowMatchEulerDiscreteScheduler applies."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def encode_captions(text_encoder: CLIPTextModelWithProjection, ids: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(context rows without the T5 zeros, pooled projections) as StableDiffusion3Pipeline makes them with the
    same encoder in both CLIP slots: the penultimate hidden states and the text embeds, each twice."""
    out = text_encoder(ids, output_hidden_states=True)
    states, pooled = out.hidden_states[-2], out.text_embeds
    return torch.cat([states, states], dim=-1), torch.cat([pooled, pooled], dim=-1)


class CollapsedZeroRowsAttention(JointAttnProcessor2_0):
    """SD3's joint attention where the last context row stands for `copies` identical rows: its key's logit
    gets + log(copies), which is what `copies` equal keys with equal values give every query."""

    def __init__(self, copies: int = T5_ROWS):
        super().__init__()
        self.log_copies = math.log(copies)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        batch = hidden_states.shape[0]

        def heads(x):
            return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        query = torch.cat([heads(attn.to_q(hidden_states)), heads(attn.add_q_proj(encoder_hidden_states))], dim=2)
        key = torch.cat([heads(attn.to_k(hidden_states)), heads(attn.add_k_proj(encoder_hidden_states))], dim=2)
        value = torch.cat([heads(attn.to_v(hidden_states)), heads(attn.add_v_proj(encoder_hidden_states))], dim=2)
        bias = torch.zeros(key.shape[2], dtype=query.dtype)
        bias[-1] = self.log_copies
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias.expand(query.shape[2], -1))
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * query.shape[-1])
        picture, context = out[:, :hidden_states.shape[1]], out[:, hidden_states.shape[1]:]
        if not attn.context_pre_only:
            context = attn.to_add_out(context)
        return attn.to_out[1](attn.to_out[0](picture)), context


def predict_velocity(transformer: SD3Transformer2DModel, x_t: torch.Tensor, sigma: torch.Tensor,
                     context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """The transformer's v at (x_t, sigma) given the CLIP context rows: one zero row appended, which the
    transformer's CollapsedZeroRowsAttention counts as T5_ROWS."""
    zeros = torch.zeros(context.shape[0], 1, context.shape[2], dtype=context.dtype)
    return transformer(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=torch.cat([context, zeros], 1),
                       pooled_projections=pooled, return_dict=False)[0]
