"""Version 3's training pieces: the VAE's extra losses, its fitted scaling_factor, the colour-noise captions and the
warm start from version 2."""

import numpy as np
import torch

from stepviz.toy.world import COLOURS, parse_scene_caption
from training import components
from training.scenes_v3 import draw_v3_scenes
from training.train_unet_v3 import warm_start, with_other_colour
from training.train_vae import latent_balance_loss, linear_rgb_loss, train_vae
from training.train_vae_v3 import fit_scaling_factor


def test_latent_balance_loss_is_zero_only_for_equal_spreads_around_zero():
    z = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert latent_balance_loss(z) < 0.01
    assert latent_balance_loss(z * torch.tensor([1.0, 1.0, 3.0, 1.0]).view(1, 4, 1, 1)) > 0.2
    assert latent_balance_loss(z + torch.tensor([0.0, 2.0, 0.0, 0.0]).view(1, 4, 1, 1)) > 0.05


def test_linear_rgb_loss_is_zero_when_a_linear_map_of_the_latents_is_the_pooled_picture():
    cells = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = torch.nn.functional.interpolate(cells, scale_factor=8)  # one colour per latent cell
    pooled = torch.nn.functional.avg_pool2d(x, 8)
    z = torch.cat([pooled, torch.zeros(2, 1, 4, 4)], dim=1)
    head = torch.nn.Conv2d(4, 3, 1)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[:, :3, 0, 0] = torch.eye(3)
    with torch.no_grad():
        assert float(linear_rgb_loss(head, z, x)) < 1e-10
        assert float(linear_rgb_loss(head, -z, x)) > 0.5


def test_the_v3_vae_trains_with_both_terms_and_its_fitted_factor_gives_unit_std(tmp_path):
    torch.manual_seed(0)
    scenes = draw_v3_scenes(12, size=32, seed=1)
    assert any(" and " in c or " of " in c or " above " in c or " below " in c for c in scenes.captions)
    vae = components.make_vae(components.TINY, 32)
    losses = train_vae(vae, scenes, 3, 4, 1e-3, 0, tmp_path / "vae.pt", balance_weight=0.05, linear_rgb_weight=1.0)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert "linear_rgb" in torch.load(tmp_path / "vae.pt", weights_only=True)
    factor, std, per_channel = fit_scaling_factor(vae, scenes, 12, seed=0)
    assert vae.config.scaling_factor == factor and factor != 1.0
    assert abs(std - 1.0) < 1e-3 and len(per_channel) == 4


def test_colour_noise_names_another_colour_and_keeps_the_two_apart():
    text = "a red circle left of a blue square on a white background"
    for which in (0, 1):
        for shift in range(5):
            noisy = with_other_colour(text, which, shift)
            things, placement, background = parse_scene_caption(noisy)
            assert (placement, background) == ("left of", "white")
            assert things[1 - which] == parse_scene_caption(text)[0][1 - which]
            assert things[which][0] not in ("red", "blue") and things[which][1] == ("circle", "square")[which]
    single = {with_other_colour("a red circle on a black background", 0, shift) for shift in range(5)}
    assert len(single) == len(COLOURS) - 1 and all("red" not in s for s in single)


def test_warm_start_copies_matching_weights_and_token_rows():
    source, target = torch.nn.Sequential(torch.nn.Linear(3, 3)), torch.nn.Sequential(torch.nn.Linear(3, 3))
    assert warm_start(target, source) == 2 and torch.equal(target[0].weight, source[0].weight)

    class Embedding(torch.nn.Module):
        def __init__(self, rows):
            super().__init__()
            self.token_embedding = torch.nn.Embedding(rows, 2)

    old, new = Embedding(3), Embedding(5)
    assert warm_start(new, old, {4: 0, 1: 2}) == 0
    assert torch.equal(new.token_embedding.weight[4], old.token_embedding.weight[0])
    assert torch.equal(new.token_embedding.weight[1], old.token_embedding.weight[2])
