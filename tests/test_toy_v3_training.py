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


def test_pair_evaluation_judges_each_prompt_by_its_own_caption(monkeypatch, tmp_path):
    from stepviz.toy.world import draw_pair
    from training import evaluate

    prompts = evaluate.pair_prompts(8)
    assert prompts == evaluate.pair_prompts(8) and len(set(prompts)) == 8
    parsed = [parse_scene_caption(p) for p in prompts]
    assert all(len(things) == 2 and things[0][0] != things[1][0] for things, _, _ in parsed)
    assert sum(placement is not None for _, placement, _ in parsed) == 4

    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

    def drawn(pipe, chunk, seeds, guidance_scale, steps, flip=False):
        pictures = []
        for prompt, seed in zip(chunk, seeds):
            things, placement, background = parse_scene_caption(prompt)
            if flip and placement is not None:  # the first shape drawn on the other side
                placement = opposite[placement]
            pictures.append(draw_pair(things[0], things[1], background, placement, seed=seed).image)
        return np.stack(pictures)

    monkeypatch.setattr(evaluate, "generate", drawn)
    right = evaluate.pair_accuracy(None, count=8, batch=3)
    assert right == {"pairs": 1.0, "placement": 1.0, "background": 1.0, "n": 8, "n_placed": 4}
    monkeypatch.setattr(evaluate, "generate", lambda *args: drawn(*args, flip=True))
    flipped = evaluate.pair_accuracy(None, count=8, batch=3, grid=tmp_path / "grid-pairs.png")
    assert flipped["pairs"] == 1.0 and flipped["placement"] == 0.0
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "grid-pairs.png"))
    cell = 2 * (128 + 4)  # pictures at the world's 128 px, framed, the grid at twice the size
    assert grid.shape == (2 * cell, 4 * cell, 3)
    frames = [tuple(grid[r * cell + 1, c * cell + 1]) for r in range(2) for c in range(4)]
    assert frames == [(40, 200, 60) if i % 2 == 0 else (230, 40, 40) for i in range(8)]  # placements flipped
    listed = (tmp_path / "grid-pairs.txt").read_text().splitlines()
    assert listed[0] == f"1.1 right: {prompts[0]}" and listed[1] == f"1.2 wrong: {prompts[1]}"


def test_a_wider_unet_is_recorded_so_resume_and_snapshot_build_the_same_network(tmp_path):
    import argparse
    import json

    import pytest

    from training.train_unet_v3 import SIZES_FILE, channel_list, stored_sizes, unet_sizes

    assert stored_sizes(tmp_path) == components.FULL  # a run that recorded nothing: the base's sizes
    sizes = unet_sizes(channel_list("64,128,128"), 2)
    assert sizes.unet_channels == (64, 128, 128) and sizes.unet_layers == 2
    (tmp_path / SIZES_FILE).write_text(json.dumps({"unet_channels": [64, 128, 128], "unet_layers": 2}))
    assert stored_sizes(tmp_path) == sizes
    unet = components.make_unet(sizes, 128)
    assert len(unet.down_blocks) == 3 and len(unet.down_blocks[0].resnets) == 2
    for bad in ("64", "64,100", "64,x", "0,128"):
        with pytest.raises(argparse.ArgumentTypeError):
            channel_list(bad)


def test_larger_shapes_redraw_the_scenes_and_a_set_from_before_keeps_the_worlds_radii(tmp_path):
    import numpy as np

    from stepviz.toy.world import PAIR_RADIUS_RANGE, RADIUS_RANGE
    from training.scenes_v3 import load_or_draw_v3, stored_radii

    path = tmp_path / "scenes.npz"
    world = load_or_draw_v3(path, 40, size=32, seed=3)
    assert stored_radii(np.load(path)) == (RADIUS_RANGE, PAIR_RADIUS_RANGE)
    larger = ((0.24, RADIUS_RANGE[1]), (0.18, PAIR_RADIUS_RANGE[1]))
    big = load_or_draw_v3(path, 40, size=32, seed=3, radii=larger)
    assert stored_radii(np.load(path)) == larger
    assert big.masks.sum() > world.masks.sum()  # the same count and seed, more of each picture covered
    assert load_or_draw_v3(path, 40, size=32, seed=3, radii=larger).masks.sum() == big.masks.sum()  # cached
    old = {name: value for name, value in np.load(path).items() if name != "radii"}
    np.savez(path, **old)  # a set cached before the radii were stored reads as the world's
    assert stored_radii(np.load(path)) == (RADIUS_RANGE, PAIR_RADIUS_RANGE)


def test_more_scenes_redraw_the_set_with_its_seed_and_show_more_two_shape_captions(tmp_path):
    from training.scenes_v3 import load_or_draw_v3
    from training.train_unet_v3 import parse_args, scene_set

    path = tmp_path / "scenes.npz"
    small = load_or_draw_v3(path, 24, size=32, seed=5)
    same, _ = scene_set(path, 32)  # no count asked: the cached set
    assert len(same) == 24 and (same.images == small.images).all()
    larger, radii = scene_set(path, 32, count=60, min_radius=0.2)
    assert len(larger) == 60 and radii[0][0] == 0.2
    assert len(set(larger.captions.tolist())) > len(set(small.captions.tolist()))
    again, _ = scene_set(path, 32, min_radius=0.2)  # the redrawn set is what is cached now
    assert len(again) == 60 and (again.images == larger.images).all()
    import pytest

    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path), "--scenes", "8", "--batch", "32"])


def test_agreement_pulls_only_captioned_low_noise_examples_and_its_step_narrows_the_gap():
    import pytest

    from training.train_unet_v3 import agreement_weights, eps_loss, parse_args

    t = torch.tensor([0, 200, 399, 400, 900, 100])
    texts = ["a red circle on a black background"] * 5 + [""]
    pull = agreement_weights(t, texts, 400, 10.0)
    assert pull.tolist() == pytest.approx([10.0, 5.0, 0.025, 0.0, 0.0, 0.0])  # falls to 0 at T; "" never pulled
    assert not agreement_weights(t, texts, 0, 10.0).any()  # off by default

    class Conditioned(torch.nn.Module):  # eps = conv(x) + a shift read from the text state
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 1)
            self.shift = torch.nn.Linear(8, 4)

        def forward(self, x, t, states):
            sample = self.conv(x) + self.shift(states.mean(dim=1))[:, :, None, None]
            return type("Output", (), {"sample": sample})()

    torch.manual_seed(0)
    unet = Conditioned()
    x_t, eps = torch.randn(6, 4, 8, 8), torch.randn(6, 4, 8, 8)
    states, empty = torch.randn(6, 3, 8), torch.randn(3, 8)
    plain = eps_loss(unet, x_t, t, eps, states, empty, torch.zeros(6))
    with torch.no_grad():
        assert float(plain) == pytest.approx(float((unet(x_t, t, states).sample - eps).pow(2).mean()))

    def gap():
        with torch.no_grad():
            return float((unet(x_t[:2], t[:2], states[:2]).sample
                          - unet(x_t[:2], t[:2], empty.expand(2, -1, -1)).sample).pow(2).mean())

    before = gap()
    pulled = eps_loss(unet, x_t, t, eps, states, empty, pull)
    assert pulled.item() > plain.item()
    optimizer = torch.optim.SGD(unet.parameters(), lr=0.01)
    (pulled - plain).backward()  # a step on the agreement term alone
    optimizer.step()
    assert gap() < before
    for bad in (["--agree-below", "1200"], ["--agree-weight", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(["--out", "x", *bad])


def test_half_weights_stores_float16_that_loads_back_as_the_same_float32_module(tmp_path, capsys):
    import pytest
    from safetensors.torch import load_file, save_file

    from training.half_weights import halve_file, main, same_at_half

    layer = torch.nn.Linear(16, 16)
    path = tmp_path / "part" / "model.safetensors"
    path.parent.mkdir()
    save_file({**layer.state_dict(), "steps": torch.arange(3)}, str(path), metadata={"format": "pt"})
    single = tmp_path / "single.safetensors"
    single.write_bytes(path.read_bytes())
    before, after = halve_file(path)
    assert same_at_half(path, single) and same_at_half(single, path)  # what --ship checks of a trained VAE
    save_file({"weight": layer.weight + 0.01, "bias": layer.bias, "steps": torch.arange(3)}, str(single))
    assert not same_at_half(path, single)
    assert after < 0.6 * before
    stored = load_file(str(path))
    assert stored["weight"].dtype == torch.float16 and stored["steps"].dtype == torch.int64
    loaded = torch.nn.Linear(16, 16)
    loaded.load_state_dict({k: v for k, v in stored.items() if k != "steps"})
    assert loaded.weight.dtype == torch.float32
    assert torch.allclose(loaded.weight, layer.weight, atol=1e-3) and not torch.equal(loaded.weight, layer.weight)
    assert halve_file(path) == (after, after)  # already half: left alone
    huge = tmp_path / "huge" / "model.safetensors"
    huge.parent.mkdir()
    save_file({"weight": torch.tensor([1e6])}, str(huge))
    untouched = huge.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main([str(huge.parent)])
    assert exit_info.value.code == 2 and "1e+06" in capsys.readouterr().err
    assert huge.read_bytes() == untouched and not list(huge.parent.glob("*tmp*"))
