"""The toy flow model (toy-flow): a StableDiffusion3Pipeline of shared parts that diffusers' own pipeline runs,
and the trainer's collapsed T5 rows, which must give the numbers the pipeline's 256 zero rows give."""

import json

import pytest
import torch

from stepviz.engine.families import PIPELINE_CLASSES
from stepviz.models.folder_check import PART_CONFIG_KEY, ModelLoadError, part_folders
from stepviz.models.loading import assemble_pipeline, shipped_folder
from training import flow_components as flow
from training.sources import is_flow_model, load_flow_pipeline, load_toy_pipeline
from training.train_flow import parse_args

PROMPT = "a red circle on a black background"


@pytest.fixture(scope="module")
def pipe():
    return load_flow_pipeline("toy-flow")


def test_toy_flow_runs_in_diffusers_sd3_pipeline_with_its_parts_configured(pipe):
    assert type(pipe).__name__ == "StableDiffusion3Pipeline" and pipe.text_encoder_3 is None
    assert type(pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler" and pipe.scheduler.config.shift == 3.0
    # the toy's VAE file read with SD3's shift_factor, the toy's tokenizer with the flow model's length
    assert json.loads((part_folders(shipped_folder("toy-flow"))["vae"] / "config.json").read_text())[
        "shift_factor"] is None
    assert pipe.vae.config.shift_factor == 0.0 and pipe.tokenizer.model_max_length == flow.FLOW_TOKENS
    assert pipe.tokenizer_2.model_max_length == flow.FLOW_TOKENS
    with torch.no_grad():
        images = pipe(prompt=[PROMPT, PROMPT], num_inference_steps=2, guidance_scale=7.5, output_type="np",
                      generator=[torch.Generator().manual_seed(s) for s in (0, 0)]).images
    assert images.shape == (2, 64, 64, 3) and 0.0 <= images.min() and images.max() <= 1.0
    assert (images[0] == images[1]).all()  # same seed, same picture


def test_the_evaluation_loads_flow_models_with_their_own_scheduler():
    assert is_flow_model("toy-flow") and not is_flow_model("toy")
    assert type(load_toy_pipeline("toy-flow").scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"


def test_a_part_config_that_is_not_a_map_is_refused_in_one_line():
    import diffusers

    index = json.loads((shipped_folder("toy-flow") / "model_index.json").read_text())
    index[PART_CONFIG_KEY] = {"vae": 0.0}
    with pytest.raises(ModelLoadError, match=PART_CONFIG_KEY):
        assemble_pipeline(diffusers.StableDiffusion3Pipeline, index, part_folders(shipped_folder("toy-flow"), index),
                          torch.float32)


@pytest.mark.skipif("StableDiffusion3Pipeline" not in PIPELINE_CLASSES,
                    reason="the engine's flow family (issue 30) is not on this branch yet")
def test_stepviz_loads_toy_flow():
    from stepviz import load_pipeline

    loaded = load_pipeline("toy-flow")
    assert type(loaded).__name__ == "StableDiffusion3Pipeline" and loaded.vae.config.shift_factor == 0.0


def test_one_collapsed_zero_row_gives_what_256_zero_rows_give():
    """The trainer's shortcut: the pipeline's T5 stand-in (256 zero rows) as one row with + log 256 on its logit."""
    torch.manual_seed(0)
    transformer = flow.make_flow_transformer(layers=2, heads=2, head_dim=8, text_width=8).eval()
    x_t, sigma = torch.randn(3, 4, 8, 8), torch.tensor([0.9, 0.5, 0.1])
    context, pooled = torch.randn(3, flow.FLOW_TOKENS, 16), torch.randn(3, 16)
    with torch.no_grad():
        rows = torch.cat([context, torch.zeros(3, flow.T5_ROWS, 16)], dim=1)
        full = transformer(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=rows,
                           pooled_projections=pooled, return_dict=False)[0]
        transformer.set_attn_processor(flow.CollapsedZeroRowsAttention(flow.T5_ROWS))
        collapsed = flow.predict_velocity(transformer, x_t, sigma, context, pooled)
        transformer.set_attn_processor(flow.CollapsedZeroRowsAttention(1))  # counted once: not the same
        once = flow.predict_velocity(transformer, x_t, sigma, context, pooled)
    assert torch.allclose(full, collapsed, atol=1e-5)
    assert not torch.allclose(full, once, atol=1e-3)


def test_the_trainer_defaults_build_the_shipped_transformer_and_scheduler():
    args = parse_args(["--out", "unused"])
    folder = shipped_folder("toy-flow")
    parts = part_folders(folder)
    shipped = json.loads((parts["transformer"] / "config.json").read_text())
    built = flow.make_flow_transformer(layers=args.layers, heads=args.heads).config
    assert {k: v for k, v in shipped.items() if not k.startswith("_")} == json.loads(json.dumps(
        {k: v for k, v in dict(built).items() if not k.startswith("_")}, default=list))
    assert json.loads((parts["scheduler"] / "scheduler_config.json").read_text())["shift"] == flow.SHIFT
    assert parts["text_encoder"] == parts["text_encoder_2"]
    assert parts["vae"] == part_folders(shipped_folder("toy"))["vae"]


def test_the_checks_before_a_run_take_toy_flows_size_from_its_transformer():
    from stepviz.models.loading import model_facts

    facts = model_facts("toy-flow")
    assert facts.default_size == 64  # the transformer's 8 x 8 latents, not an SD UNet's 512 px default
