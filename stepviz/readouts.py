"""The numbers the panels print (TUI and notebook), as plain text: pure functions of a RunView and a StepRecord."""

from __future__ import annotations

from .engine.prediction import prediction_for


def scheduler_text(view) -> str:
    """'ddim (vp, order 1)' plus the multistep history fill where there is one."""
    text = f"{view.scheduler} ({view.family}, order {view.order}"
    if view.multistep:
        filled, capacity = view.history_fill or (0, view.order)
        text += f", history {filled}/{capacity}"
    return text + ")"


def model_label(model: str) -> str:
    """A model as the user named it: 'toy', a hub id, or a folder's last part."""
    return model.rstrip("/").rsplit("/", 1)[-1] if model.startswith(("/", ".", "~")) else model


def status_text(view, record) -> str:
    """The status line: model, device and dtype, mode, what the UNet predicts, scheduler, step i/N, t, sigma, alpha_cumprod, guidance scale."""
    step = 0 if record is None else record.index + 1
    parts = [model_label(view.model), f"{view.device} {view.dtype}", view.mode,
             f"predicts {prediction_for(view.prediction_type).symbol}", scheduler_text(view),
             f"step {step}/{view.total_steps}"]
    if record is None:
        parts.append("t -")
    else:
        parts.append(f"t {record.timestep:g}  sigma {record.sigma:.3f}  alpha_cumprod {record.alpha_cumprod:.4f}")
    scale = view.guidance_scale if record is None else record.guidance_scale
    parts.append(f"guidance {scale:g}")
    if record is not None and record.index + 1 < view.steps_taken:
        parts.append(f"looking back ({view.steps_taken} taken)")
    elif record is None and view.steps_taken:
        parts.append(f"looking at the start ({view.steps_taken} taken)")
    elif view.done:
        parts.append("finished")
    return " · ".join(parts)


def guidance_rows(prediction_type: str = "epsilon") -> tuple[tuple[str, str, str], ...]:
    """(record field, label, colour) per plotted norm, in the symbol of what the UNet predicts (eps, v, x0)."""
    p = prediction_for(prediction_type).symbol
    return (
        ("norm_uncond", f"|{p}_u|", "#3d9df3"),
        ("norm_text", f"|{p}_t|", "#ffa500"),
        ("norm_guidance", f"|{p}_t-{p}_u|", "#ff4fd8"),
        ("norm_noise_pred", f"|{p}_hat|", "#3ddc4a"),
    )


GUIDANCE_ROWS = guidance_rows()


def guidance_text(record, width: int = 80) -> str:
    """The branch norms and cosine of one step in three lines (Rich markup; colours match the plot).

    u = uncond (negative prompt) branch, t = text (prompt) branch; the help screen spells them out.
    """
    if record is None:
        return "take a step (space) to see the two branches"
    (u, lu, cu), (t, lt, ct), (d, ld, cd), (e, le, ce) = guidance_rows(record.prediction_type)
    value = lambda name: f"{getattr(record, name):.4f}"  # noqa: E731
    cos = f"cos(u,t) {record.cos_uncond_text:.4f}"
    if width >= 50:
        lines = [prediction_for(record.prediction_type).cfg_line(f"{record.guidance_scale:g}", short=True),
                 f"[{cu}]{lu}[/] {value(u)}  [{ct}]{lt}[/] {value(t)}  {cos}",
                 f"[{cd}]{ld}[/] {value(d)}  [{ce}]{le}[/] {value(e)}"]
    else:
        lines = [f"[{cu}]{lu}[/] {value(u)}  [{ct}]{lt}[/] {value(t)}",
                 f"[{cd}]{ld}[/] {value(d)}  s {record.guidance_scale:g}",
                 f"[{ce}]{le}[/] {value(e)}  {cos}"]
    if record.nonfinite:
        lines.append(f"[red]NaN/Inf first seen in: {record.nonfinite}[/]")
    return "\n".join(lines)


def guidance_series(records) -> dict[str, tuple[list[float], list[float]]]:
    """(steps, values) per plotted norm, over the records so far."""
    steps = [r.index + 1 for r in records]
    return {name: (steps, [float(getattr(r, name)) for r in records]) for name, _, _ in GUIDANCE_ROWS}


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
