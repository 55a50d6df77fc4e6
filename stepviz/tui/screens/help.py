"""The help screen (`?`): every key, and every quantity on screen with its formula."""

from __future__ import annotations

from rich.markdown import Markdown
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ...engine.prediction import prediction_for

HELP = """\
# stepviz: keys

| key | what it does |
|---|---|
| `space` | take one scheduler step |
| `p` | play / pause (one step after another) |
| `left` / `right` | look at an earlier / later recorded step (or click the timeline) |
| `b` | rewind the run to the step you are looking at (later steps are dropped) |
| `g` | set the guidance scale s, from the next step on |
| `s` | pick a scheduler for the remaining steps (family and order shown) |
| `v` | cycle the preview: approx RGB -> 4 latent channels -> full VAE decode |
| `f` | fork the run at the step looked at; the run and its fork side by side (compare view) |
| `c` | a lesson's `[[compare]]` runs beside this one, at its step (compare view) |
| `n` | every note so far, to reread |
| `x` | export the run as a labelled strip PNG into the working folder |
| `X` | export the run as `stepviz export` does (the explorable index.html, the handout) into a new folder `stepviz-export-<time>` in the working folder, your edits replayed at their steps |
| `a` | attention: which pixels each word of the prompt pulls on (keys there: up/down or 1-9 token, z all tokens, u x0-hat/x_t) |
| `?` | this help (`escape` closes it) |
| `q` | quit at once (a step in progress is abandoned) |

# What each number means

One step of the loop, from x_t to x_(t-1):

1. `latent_model_input = [x_t, x_t]` - the same latents twice: negative prompt (uncond) first, then the prompt.
2. `scale_model_input(x, t)` - VP schedulers (DDIM, DDPM, PNDM, DPM-Solver++, UniPC, DEIS) leave x as it is;
   sigma schedulers (Euler, Euler a, LMS, Heun) divide by `sqrt(sigma^2 + 1)`, because their latents are
   `x = x0 + sigma * eps` and the UNet was trained on unit-variance inputs.

   *Step 2b*, extra channels: a UNet with more input channels gets them appended, the same at every step: the inpainting model
   **[x_t, m, E(image * (1 - m))]** (4 + 1 + 4 = 9: the mask and the masked picture's latents), Depth2Img
   **[x_t, depth]** (4 + 1 = 5: the depth map at latent size, scaled to [-1, 1], near = high). Their panel
   shows them.
3. The UNet predicts {meaning} for both (this model's prediction_type is `{ptype}`): **{p}_uncond** and
   **{p}_text**.
4. Classifier-free guidance, the CFG line: **{cfg}**.
   s > 1 pushes further along what the prompt adds. At s <= 1, and at any s for a UNet that takes s as an input
   (LCM's), diffusers skips CFG and so does stepviz: **{p}_hat = {p}_text**, the prompt's prediction alone
   (the guidance panel says so; {p}_uncond is still computed, for the panels and for raising s later).
5. `scheduler.step({p}_hat, t, x_t)` gives x_(t-1) and **x0-hat**, the clean latents predicted at this step.
6. Inpaint with an ordinary 4-channel UNet (the DIY loop): **x = m * x_generated + (1 - m) * add_noise(E(image),
   noise, t_next)** - outside the mask m the original, re-noised to the next noise level, replaces what was
   generated. The inpainting model (9 channels) needs no blend: it sees the mask in step 2b.

**t** - the timestep in SD's 1000-step training schedule: 0 is nearly clean (abar = 0.99915), 999 the noisiest
(abar = 0.0047: close to noise, not pure noise). Inference takes a subset: 25 DDIM steps with the model's
"leading" spacing start at t = 961 and end at t = 1, and DDIM's last step lands on abar = 0.99915
(sigma_next = 0.029), not on the clean picture; the sigma family (Euler, LMS, Heun) ends at sigma 0.

**alpha_cumprod** (abar_t) - the product of (1 - beta) up to t: **x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps**.
How much of the clean picture is left at t.

**sigma** - the same noise level in the sigma family's terms: **sigma_t = sqrt((1 - abar_t) / abar_t)**.

**x0-hat** - from {p}_hat: VP: **{x0_vp}**; sigma family: **{x0_sigma}**; flow family: **{x0_flow}**.
(eps: the noise; v: the velocity sqrt(abar_t) eps - sqrt(1 - abar_t) x0; x0: the clean latents.)

**Flow family** (SD3, FLUX.1: a transformer, no UNet) - the path is a straight line from the picture to noise:
**x_t = (1 - sigma) x0 + sigma eps**, sigma from 1 (pure noise) to 0; the model predicts its direction, the
velocity **v = eps - x0** (`flow_prediction`, "predicts v (flow)"), and reads t = 1000 sigma. No
scale_model_input, no init_noise_sigma: x_T = eps. From v_hat: **x0-hat = x_t - sigma v_hat**, **eps-hat = x_t +
(1 - sigma) v_hat**; the Euler step is **x_next = x_t + (sigma_next - sigma) v_hat**. The status line shows
**1-sigma** (the picture's share) where VP shows alpha_cumprod. The **shift** s maps the even schedule u to
**sigma = s u / (1 + (s - 1) u)** (SD3: s = 3; FLUX.1: s = e^mu, mu grows with the picture's token count):
more of the steps at high noise, where the layout is decided; the schedule panel draws sigma without and with
it. FLUX.1-dev embeds the guidance scale in the model (one call per step); its true CFG (`true_cfg_scale` with a
negative prompt) makes two calls. A flow run swaps only to flow schedulers (flow_euler, flow_dpmpp_2m,
flow_unipc): VP/sigma ones predict another target on another path.

**Guidance anatomy** - **|{p}_uncond|**, **|{p}_text|** (L2 norms over all n latent elements, and beside them the per-element RMS = L2 / sqrt(n), the same scale on any model),
**|{p}_text - {p}_uncond|** (the direction guidance amplifies, times s), **|{p}_hat|** (what the scheduler gets),
**cos(uncond, text)** = <{p}_uncond, {p}_text> / (|{p}_uncond| |{p}_text|): it is 0.99.. in nearly every run, even where the prompt decides the colour, so the panel gives the **angle** = acos(cos) in degrees and **1 - cos**: runs differ there.

**Scheduler** - family (vp or sigma: which latent space), order (model calls per timestep, or history length);
multistep solvers (PNDM, LMS, DPM-Solver++, UniPC, DEIS) keep a history of earlier predictions: after a swap a
fresh one restarts at first order, the status line shows its history fill.

**Previews** - approx RGB: **rgb = x @ F + b**, a fixed linear map (nearly free), or the model folder's tiny
decoder where it ships one (the toy's: an AutoencoderTiny, as TAESD); the latent channels as grey tiles (4, or SD3's and FLUX.1's 16; range -3..3); full VAE decode: **D(x / scaling_factor)** (SD3, FLUX.1: **D(x / scaling_factor + shift_factor)**). Sigma-family latents are shown divided by
sqrt(sigma^2 + 1), flow latents by sqrt((1 - sigma)^2 + sigma^2), so the families look alike.

**Cross-attention maps** (`a`) - for the text branch of the CFG batch, every cross-attention layer's probabilities
**softmax(Q K^T / sqrt(d))** over the 77 text keys (Q from the latent pixels, K from the text embeddings, d the head
size), taken at the prompt's token positions (start token through the first end token), averaged over heads,
resized to latent size with nearest-neighbour, then averaged over layers with equal weight. Each map is drawn
relative to its own mean (dark red = an even spread, white = 2.5x the mean). **On the foreground** = sum(map *
foreground) / sum(map), with the foreground the largest blob of x0-hat far from its border colour (the toy
checker's shape), at latent size; an even spread would give the foreground's share of the area. The maps are
computed beside the layers' own output: the sample is bit-identical with or without them.

**Prompt anatomy** - the tokenizer's tokens and ids (up to 77, with start and end tokens), the embedding shape
[1, 77, d] the UNet attends to, and what was cut if the prompt was too long.
"""


def help_text(prediction_type: str = "epsilon", sharing: str | None = None) -> str:
    """The help in the symbols of what this model's UNet predicts (eps, v or x0), with x0-hat's formulas;
    `sharing`: a shared engine's line (how this session's results relate to a solo run) on top."""
    p = prediction_for(prediction_type)
    top = f"**Shared engine** - {sharing}.\n\n" if sharing else ""
    return top + HELP.format(p=p.symbol, ptype=p.prediction_type, meaning=p.meaning, cfg=p.cfg_line(),
                             x0_vp=p.x0_vp, x0_sigma=p.x0_sigma, x0_flow=p.x0_flow)


class HelpScreen(Screen[None]):
    """A whole screen, one Static: it opens in tens of milliseconds even while a step computes
    (a modal over the main screen, or Textual's Markdown widget with a widget per block, took
    hundreds, see bench/p2_key_latency.py)."""

    BINDINGS = [Binding("escape,question_mark", "dismiss", "close"),
                Binding("q", "app.quit", "quit", priority=True, show=False)]

    def __init__(self, prediction_type: str = "epsilon", sharing: str | None = None) -> None:
        super().__init__()
        self.prediction_type, self.sharing = prediction_type, sharing

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Markdown(help_text(self.prediction_type, self.sharing)), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-body").border_subtitle = "up/down to scroll · escape to close"


def open_help(app, prediction_type: str | None = None, sharing: str | None = None) -> None:
    """Open help over any screen. With the run's prediction type (known once the model is loaded) it is
    installed once and kept: it reopens in milliseconds; before that, a plain one with the epsilon formulas.
    A shared engine's session gets a fresh one each time (`sharing` counts the other sessions now)."""
    if prediction_type is None or sharing:
        app.push_screen(HelpScreen(prediction_type or "epsilon", sharing))
        return
    name = f"help-{prediction_type}"
    if not app.is_screen_installed(name):
        app.install_screen(HelpScreen(prediction_type), name)
    app.push_screen(name)
