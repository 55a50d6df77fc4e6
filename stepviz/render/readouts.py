"""The numbers the panels print (TUI and notebook), as plain text: pure functions of a RunView and a StepRecord."""

from __future__ import annotations

import math

from ..engine.prediction import prediction_for


def scheduler_text(view, record=None, before: bool = False) -> str:
    """'ddim (vp, order 1)' plus the multistep history fill, as they were after `record` (None: now;
    `before`: before that step, i.e. at the start of the run).

    Looking back, the step's own scheduler is shown: after a swap the steps before it ran on the old one.
    """
    if record is None:
        name, family, order, multistep, fill = (view.scheduler, view.family, view.order, view.multistep,
                                                view.history_fill)
    else:
        from ..engine.schedulers import ALL_SCHEDULERS

        info = ALL_SCHEDULERS.get(record.scheduler)
        name, family = record.scheduler, record.family
        order, multistep = (info.order, info.multistep) if info else (view.order, view.multistep)
        fill = None if before else record.history_fill
    text = f"{name} ({family}, order {order}"
    if multistep and (fill is not None or before):  # a recorded loop's history is not known: not shown
        filled, capacity = fill or (0, order)
        text += f", history {filled}/{capacity}"
    return text + ")"


def model_label(model: str) -> str:
    """A model as the user named it: 'toy', a hub id, or a folder's last part."""
    return model.rstrip("/").rsplit("/", 1)[-1] if model.startswith(("/", ".", "~")) else model


def status_text(view, record, compact: bool = False, narrow: bool = False) -> str:
    """The status line of the step looked at: model, device and dtype, mode, what the UNet predicts, the step's
    scheduler, step i/N, t, sigma, alpha_cumprod, its guidance scale (`compact`: the step's own part only, for a
    column of the compare view; `narrow`: without device and dtype, alpha_cumprod as abar, for 80 columns)."""
    step = 0 if record is None else record.index + 1
    at_start = record is None and view.records  # looking at the start of a run with steps: its first scheduler
    first = view.records[0] if at_start else record
    family = getattr(view, "model_family", "")  # SD3 / FLUX.1 named: their loop is the flow family's
    label = model_label(view.model) + (f" ({family})" if family in ("SD3", "FLUX.1") else "")
    parts = [] if compact else [label, *([] if narrow else [f"{view.device} {view.dtype}"]),
                                view.mode, f"predicts {prediction_for(view.prediction_type).name}"]
    parts += [scheduler_text(view, first, bool(at_start)), f"step {step}/{view.total_steps}"]
    if record is None:
        parts.append("t -")
    elif compact:
        parts.append(f"t {record.timestep:g}  sigma {record.sigma:.3f}")
    elif record.family == "flow":  # x_t = (1 - sigma) x0 + sigma eps: 1 - sigma where VP shows abar
        shift = f"  shift {record.shift:g}" if record.shift is not None else (
            f"  mu {record.mu:.3f}" if record.mu is not None else "")
        parts.append(f"t {record.timestep:g}  sigma {record.sigma:.3f}  1-sigma {record.alpha_cumprod:.4f}{shift}")
    else:
        abar = "abar" if narrow else "alpha_cumprod"
        parts.append(f"t {record.timestep:g}  sigma {record.sigma:.3f}  {abar} {record.alpha_cumprod:.4f}")
    scale = view.guidance_scale if first is None else first.guidance_scale
    parts.append(f"guidance {scale:g}" + ("" if first is None or first.true_cfg_scale is None
                                          else f" (embedded), true CFG {first.true_cfg_scale:g}"))
    if record is not None and record.index + 1 < view.steps_taken:
        parts.append(f"looking back ({view.steps_taken} taken)")
    elif record is None and view.steps_taken:
        parts.append(f"looking at the start ({view.steps_taken} taken)")
    elif view.done:
        parts.append("finished")
    return " · ".join(parts)


# The guidance anatomy's four norms, for every view of them: (record field, label in plain text, label for
# plots, the TUI's colour); {p} is what the UNet predicts (eps, v or x0: prediction.py's symbol / pretty).
NORM_ROWS = (
    ("norm_uncond", "|{p}_u|", "‖{p}_uncond‖", "#3d9df3"),
    ("norm_text", "|{p}_t|", "‖{p}_text‖", "#ffa500"),
    ("norm_guidance", "|{p}_t-{p}_u|", "‖{p}_text − {p}_uncond‖", "#ff4fd8"),
    ("norm_noise_pred", "|{p}_hat|", "‖{p}̂‖ (after CFG)", "#3ddc4a"),
)


def guidance_rows(prediction_type: str = "epsilon") -> tuple[tuple[str, str, str], ...]:
    """(record field, label, colour) per norm, in the symbol of what the UNet predicts (eps, v, x0)."""
    p = prediction_for(prediction_type).symbol  # the flow's v: v_u, v_t (the status line says "v (flow)")
    return tuple((field, label.format(p=p), colour) for field, label, _, colour in NORM_ROWS)


GUIDANCE_ROWS = guidance_rows()


def rms(record, name: str) -> float:
    """Per-element RMS of a norm: the L2 norm over all n latent elements divided by sqrt(n)."""
    return float(getattr(record, name)) / record.noise_pred_uncond.numel() ** 0.5


def angle_degrees(cos: float) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def driving_line(record, short: bool = True) -> str:
    """What drove the step, in the prediction's symbols: the CFG line, or the prompt's prediction alone (diffusers
    guides only at s > 1, and never a UNet that takes s as an input, as LCM's do)."""
    p = prediction_for(record.prediction_type)
    if record.noise_pred_from == "cfg":
        return p.cfg_line(f"{record.guidance_scale:g}", short=short)
    why = ("s <= 1: no CFG, as diffusers" if record.guidance_scale <= 1
           else "the UNet embeds s: no CFG, as diffusers")
    return f"{p.symbol}_hat = {p.symbol}_{'t' if short else 'text'}  ({why})"


def guidance_text(record, width: int = 80) -> str:
    """The branch norms (L2 and per-element RMS) and the angle between the branches (Rich markup; colours match
    the plot). cos(u,t) is 0.99.. in nearly every run, so the angle and 1 - cos are what tell runs apart.

    u = uncond (negative prompt) branch, t = text (prompt) branch; the help screen spells them out.
    """
    if record is None:
        return "take a step (space) to see the two branches"
    cos = record.cos_uncond_text
    angle = f"angle(u,t) {angle_degrees(cos):.2f}°  1-cos {1 - cos:.5f}"
    (u, lu, cu), (t, lt, ct), (d, ld, cd), (e, le, ce) = guidance_rows(record.prediction_type)
    if width >= 58:
        value = lambda name: f"{getattr(record, name):.2f} rms {rms(record, name):.3f}"  # noqa: E731
        lines = [f"{driving_line(record)}   [dim]L2 norm, rms per element[/]",
                 f"[{cu}]{lu}[/] {value(u)}   [{ct}]{lt}[/] {value(t)}",
                 f"[{cd}]{ld}[/] {value(d)}   [{ce}]{le}[/] {value(e)}",
                 f"{angle}  (cos {cos:.4f})"]
    else:
        value = lambda name: f"{rms(record, name):.3f}"  # noqa: E731
        lines = [f"rms [{cu}]{lu[1:-1]}[/] {value(u)} [{ct}]{lt[1:-1]}[/] {value(t)}",
                 f"[{cd}]{ld[1:-1]}[/] {value(d)} [{ce}]{le[1:-1]}[/] {value(e)} s {record.guidance_scale:g}"
                 + ("" if record.noise_pred_from == "cfg" else " prompt only"),
                 angle]
    if record.nonfinite:
        lines.append(f"[red]NaN/Inf first seen in: {record.nonfinite}[/]")
    return "\n".join(lines)


def compare_numbers(record) -> str:
    """One line under a run in the compare view: what guidance adds, and the angle between the branches."""
    if record is None:
        return "take a step (space)"
    name, label, colour = guidance_rows(record.prediction_type)[2]
    only = "" if record.noise_pred_from == "cfg" else " (prompt only)"
    return (f"s {record.guidance_scale:g}{only} · [{colour}]{label}[/] rms {rms(record, name):.3f} · "
            f"angle(u,t) {angle_degrees(record.cos_uncond_text):.2f}°")


def guidance_series(records) -> dict[str, tuple[list[float], list[float]]]:
    """(steps, per-element RMS) per plotted norm, over the records so far."""
    steps = [r.index + 1 for r in records]
    return {name: (steps, [rms(r, name) for r in records]) for name, _, _ in GUIDANCE_ROWS}


def prompt_text(anatomy, negative=None, added: str | None = None) -> str:
    """Tokens with their ids, the embedding shape, and the truncation notice if any."""
    if anatomy is None:
        return "prompt anatomy: loading..."
    pairs = " ".join(f"{tok}:{tid}" for tok, tid in zip(anatomy.tokens, anatomy.input_ids))
    lines = [f"prompt {anatomy.text!r}", f"tokens:ids  {pairs}",
             f"{len(anatomy.tokens)} of {anatomy.max_length} tokens, embedding {tuple(anatomy.embedding_shape)}"]
    if anatomy.notice:
        lines.append(f"TRUNCATED: {anatomy.notice}")
    if added:
        lines.append(added)
    if negative is not None:
        neg = " ".join(negative.tokens)
        lines.append(f"negative {negative.text!r} -> {neg}")
        if negative.notice:
            lines.append(f"TRUNCATED: {negative.notice}")
    return "\n".join(lines)


def visited_timesteps(records) -> list[float]:
    return [float(r.timestep) for r in records]


def grid_points_visited(grid, visited: list[float]) -> int:
    """How many of the run's noise levels (its first-order grid) the visited timesteps cover: a timestep
    taken twice (PNDM's warm-up, Heun's second evaluation) counts once, one between grid points (KDPM2's
    midpoints) not at all, so the count never passes the grid's length."""
    seen = set(visited)
    return sum(float(t) in seen for t in grid)
