"""The one training loop: a resumed run ends exactly where an uninterrupted one does, averages and logs too."""

import copy

import pytest
import torch

from training.checkpoint import warmup_cosine
from training.loop import Schedule, train_steps, update_ema


class Interrupted(Exception):
    pass


def run(folder, model: torch.nn.Module, average: torch.nn.Module, log: list, stop_at: int | None = None,
        until: int = 0):
    optimizer = torch.optim.AdamW([dict(params=[model.weight], lr_scale=1.0), dict(params=[model.bias], lr_scale=10.0)],
                                  lr=0.1)
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))

    def batch_loss(step, generator):
        if step == stop_at:
            raise Interrupted  # as a killed run: the last checkpoint is what is left
        x = data[torch.randint(len(data), (8,), generator=generator)]
        return (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()

    schedule = Schedule("test", 6, 0.05, warmup=2, seed=3, phase=1, checkpoint=folder / "loop.pt",
                        save_every_s=1e-9, ema_decay=0.9, report_every=2, until=until)  # a checkpoint every step
    losses = train_steps(schedule, {"model": model}, optimizer, batch_loss, averages={"ema": (average, model)},
                         logs={"seen": log}, report=lambda step: log.append(step) or "noted")
    return losses, optimizer


def fresh():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, copy.deepcopy(model)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole, whole_average = fresh()
    whole_log: list = []
    whole_losses, optimizer = run(tmp_path / "a", whole, whole_average, whole_log)

    with pytest.raises(Interrupted):
        run(tmp_path / "b", *fresh(), [], stop_at=3)
    again, again_average = fresh()  # a new process: the weights come from the checkpoint
    again_log: list = []
    again_losses, _ = run(tmp_path / "b", again, again_average, again_log)

    assert again_losses == whole_losses and len(whole_losses) == 6
    assert torch.equal(again.weight, whole.weight) and torch.equal(again_average.weight, whole_average.weight)
    assert not torch.equal(whole_average.weight, whole.weight)  # the average lags the weights
    assert whole_log == [0, 2, 4, 5] and again_log == [0, 2, 4, 5]  # the log of the first part came back
    # the last step's learning rate (warm-up capped at a tenth of the run plus one: 1 step), 10x where asked
    last = warmup_cosine(5, 6, 0.05, warmup=1)
    assert last < 0.05 and [group["lr"] for group in optimizer.param_groups] == [last, 10 * last]


def test_a_run_stopped_by_until_and_resumed_ends_where_an_uninterrupted_one_does(tmp_path):
    whole, whole_average = fresh()
    whole_losses, _ = run(tmp_path / "a", whole, whole_average, [])
    part, part_average = fresh()
    first_losses, _ = run(tmp_path / "b", part, part_average, [], until=4)
    assert len(first_losses) == 4 and first_losses == whole_losses[:4]
    assert not torch.equal(part.weight, whole.weight)
    again, again_average = fresh()
    again_losses, _ = run(tmp_path / "b", again, again_average, [])
    assert again_losses == whole_losses
    assert torch.equal(again.weight, whole.weight) and torch.equal(again_average.weight, whole_average.weight)


def test_update_ema_moves_the_average_toward_the_weights():
    model, average = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = average.weight.detach().clone()
    update_ema(average, model, decay=0.75)
    assert torch.allclose(average.weight, 0.75 * before + 0.25 * model.weight)
