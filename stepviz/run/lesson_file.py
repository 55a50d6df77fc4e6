"""Scenario files: a lesson in TOML -> RunSettings, scripted events and notes.

    title = "What guidance does"
    description = "The same seed at guidance 1, 7.5 and 15."
    prompt = "a red circle on a black background"
    steps = 25
    guidance_scale = 7.5

    [[events]]
    at_step = 10                # applied once the run has taken 10 steps (0 = before the first)
    set_guidance_scale = 1.0
    note = "Guidance off from here: watch x0-hat lose the colour."
    pause = true

    [[compare]]                 # another run beside the main one (without the main run's events)
    label = "guidance 15"
    guidance_scale = 15.0

    [[expect]]                  # a claim the description makes (claims.py), measured at the run's end
    seeds = "0-15"
    run = "guidance 15"
    picture = "x_t"
    colour = "yellow"
    count = 16

Pictures (`image`, `mask_image`) are paths relative to the scenario file, or drawn toy scenes:
`image = { toy_scene = "a red circle on a black background", seed = 1 }` and the same scene's
mask with `mask_image = { toy_scene = "...", seed = 1, layer = "mask" }` (layer "box": a box around
the shape in whole 8x8 latent cells; "depth": its depth map).
Every error names the file, the key (with its line) and what is allowed; unknown keys are errors.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

from ..engine import checks, memory
from ..engine.checks import MODES, StepvizInputError, depth_tensor
from ..engine.schedulers import check_scheduler_name
from ..lessons.events import CompareBranch, Event
from .lockstep import COLUMN_LETTERS
from .settings import RunSettings
from ..lessons.shipped import ScenarioError, lesson_path
from ..lessons.toy_scenes import TOY_SCENE_KEYS, TOY_SCENE_LAYERS, draw_toy_picture

# key -> (python type(s) accepted, what is allowed, in words)
RUN_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "'toy', a local diffusers folder or a cached hub id"),
    "mode": ((str,), f"one of {', '.join(MODES)}"),
    "prompt": ((str,), "a string"),
    "negative_prompt": ((str,), "a string"),
    "seed": ((int,), "an integer in [0, 2**63)"),
    "steps": ((int,), "an integer >= 1"),
    "guidance_scale": ((int, float), "a finite number"),
    "scheduler": ((str,), "a scheduler name (see `stepviz schedulers`)"),
    "height": ((int,), "a positive multiple of 8"),
    "width": ((int,), "a positive multiple of 8"),
    "image": ((str, dict), "a path relative to the scenario file, or { toy_scene = \"<caption>\", seed = N }"),
    "mask_image": ((str, dict), "a path relative to the scenario file, or { toy_scene = \"<caption>\", seed = N, "
                                "layer = \"mask\" }"),
    "depth_map": ((str, dict), "a greyscale picture (near = bright) relative to the scenario file, or "
                               "{ toy_scene = \"<caption>\", seed = N, layer = \"depth\" }"),
    "strength": ((int, float), "a number in [0, 1]"),
    "inpaint_noise": ((str,), "'fixed' (the DIY blend re-noises the original with one noise) or 'fresh' (new "
                              "noise every step)"),
    "timestep_spacing": ((str,), "'leading', 'trailing' or 'linspace' (how the inference steps sit on the "
                                 "1000 training steps)"),
    "shift": ((int, float), "a number > 0: a flow model's shift of its sigmas (1: none; SD3 and toy-flow: 3)"),
}
TOP_KEYS = {"title": ((str,), "a string"), "description": ((str,), "a string"),
            "pace": ((int, float), "seconds each note stays on screen when the lesson plays itself (> 0)"),
            **RUN_KEYS}
EVENT_KEYS = {
    "at_step": ((int,), "an integer >= 0: the number of steps taken when the event applies"),
    "set_guidance_scale": ((int, float), "a finite number"),
    "set_scheduler": ((str,), "a scheduler name (see `stepviz schedulers`)"),
    "note": ((str,), "text shown in the notes area at that step"),
    "pause": ((bool,), "true or false"),
    "expect": ((list,), "claims the note makes, as [[events.expect]] tables (see `stepviz lessons check`)"),
}
COMPARE_KEYS = {"label": ((str,), "a short name for the branch"), **RUN_KEYS}


# ---------------------------------------------------------------- loading
def load_lesson(name_or_path: str | Path) -> RunSettings:
    """RunSettings from a lesson file (or a ready lesson's name), every value checked."""
    path = lesson_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not TOML
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return _Reader(path, text).settings(data)


load_scenario = load_lesson  # its name before lessons were called lessons (kept for scripts that use it)


class _Reader:
    """Checks one parsed file; knows the text so errors can give the line of a key."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()
        self._claims_seen: dict[str, int] = {}  # claim tables read so far, per table name (for their lines)

    def fail(self, where: str, key: str, message: str, table: str | None = None, index: int = 0):
        line = self._line_of(key, table, index)
        at = f" (line {line})" if line else ""
        raise ScenarioError(f"{self.path}: {where}{key}{at}: {message}")

    def _line_of(self, key: str, table: str | None, index: int) -> int | None:
        """Line of `key =` in the top level (table None) or in the index-th [[table]]."""
        header = re.compile(r"^\s*\[")
        assign = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        seen, inside = -1, table is None
        for number, line in enumerate(self.lines, start=1):
            if header.match(line):
                if table is None:
                    return None
                inside = line.strip() == f"[[{table}]]" and (seen := seen + 1) == index
                continue
            if inside and assign.match(line):
                return number
        return None

    def follow(self, rule, value, where: str, key: str, table: str | None, index: int, part: bool = False) -> None:
        """Apply one of the engine's rules to a value of the file; its refusal names the file, key and line
        (and keeps the rule's own `name=` when the value is a `part` of the key's table)."""
        try:
            rule(value)
        except StepvizInputError as exc:
            self.fail(where, key, str(exc) if part else re.sub(r"^\w+=", "", str(exc)), table, index)

    def check(self, allowed: dict, data: dict, where: str, table: str | None = None, index: int = 0) -> None:
        for key, value in data.items():
            if key not in allowed:
                self.fail(where, key, f"unknown key; allowed keys are {', '.join(allowed)}", table, index)
            types, words = allowed[key]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if ok and isinstance(value, float) and not math.isfinite(value):
                ok = False
            if not ok:
                self.fail(where, key, f"{value!r} is not allowed: it must be {words}", table, index)

    def settings(self, data: dict) -> RunSettings:
        top = {k: v for k, v in data.items() if k not in ("events", "compare", "expect")}
        self.check(TOP_KEYS, top, "")
        if "pace" in top and top["pace"] <= 0:
            self.fail("", "pace", f"{top['pace']!r} is not allowed: it must be a number of seconds > 0")
        run = self.run_values(top, "", None, 0)
        settings = RunSettings(**run, source=str(self.path))
        settings.events = [self.event(item, i, settings.steps) for i, item in enumerate(self.tables(data, "events"))]
        settings.compare = [self.branch(item, i) for i, item in enumerate(self.tables(data, "compare"))]
        if len(settings.compare) >= len(COLUMN_LETTERS):
            self.fail("", "compare", f"{len(settings.compare)} [[compare]] tables are not allowed: at most "
                      f"{len(COLUMN_LETTERS) - 1} runs beside the lesson's own (the compare view's columns "
                      f"{COLUMN_LETTERS[0]}-{COLUMN_LETTERS[-1]})")
        settings.expect = self.claims({"expect": self.tables(data, "expect")}, "end", "", "expect")
        self.check_claim_runs(settings)
        return settings

    def tables(self, data: dict, name: str) -> list[dict]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail("", name, f"must be an array of tables, written [[{name}]]")
        return value

    def run_values(self, values: dict, where: str, table: str | None, index: int) -> dict:
        """Check the values of run keys that need no model; resolve pictures relative to the file."""
        run = dict(values)
        if "guidance_scale" in run:
            run["guidance_scale"] = float(run["guidance_scale"])
        for key in ("strength", "shift"):
            if key in run:
                run[key] = float(run[key])
        for key, rule in {**checks.RUN_RULES, "scheduler": check_scheduler_name}.items():
            if key in run:
                self.follow(rule, run[key], where, key, table, index)
        for key in ("image", "mask_image", "depth_map"):
            if key in run:
                run[key] = self.picture(key, run[key], where, table, index)
        if "depth_map" in run:
            run["depth_map"] = depth_tensor(run["depth_map"])
        return run

    def picture(self, key: str, value, where: str, table: str | None, index: int):
        if isinstance(value, str):
            path = (self.path.parent / value).expanduser()
            if not path.is_file():
                self.fail(where, key, f"no such file {str(path)!r} (paths are relative to the scenario file)",
                          table, index)
            return str(path)
        unknown = [k for k in value if k not in TOY_SCENE_KEYS]
        if unknown or "toy_scene" not in value:
            self.fail(where, key, f"a drawn scene is {{ toy_scene = \"a red circle on a black background\", seed = 1 }}"
                      f" with optional size = 64 and layer = {' | '.join(TOY_SCENE_LAYERS)}; "
                      f"{'unknown key ' + unknown[0] if unknown else 'toy_scene is missing'}", table, index)
        layer = value.get("layer", {"mask_image": "mask", "depth_map": "depth"}.get(key, "image"))
        seed, size = value.get("seed", 0), value.get("size", 64)
        for rule, given in ((lambda v: checks.check_choice("layer", v, TOY_SCENE_LAYERS, "layers"), layer),
                            (checks.check_seed, seed), (lambda v: checks.check_size("size", v), size)):
            self.follow(rule, given, where, key, table, index, part=True)
        try:
            memory.check_run_memory("a toy scene of size", size, size, 1)  # the toy model's widths: the least
            return draw_toy_picture(value["toy_scene"], seed, size, layer)
        except ValueError as exc:
            self.fail(where, key, str(exc), table, index)

    def event(self, item: dict, i: int, steps: int) -> Event:
        where = f"[[events]] #{i + 1}: "
        self.check(EVENT_KEYS, item, where, "events", i)
        if "at_step" not in item:
            self.fail(where, "at_step", "is missing: every event needs at_step", "events", i)
        at_step = item["at_step"]
        if not 0 <= at_step < steps:
            self.fail(where, "at_step", f"{at_step} is not allowed: it must be in 0..{steps - 1} "
                      f"(the run has {steps} steps)", "events", i)
        if "set_scheduler" in item:
            self.follow(check_scheduler_name, item["set_scheduler"], where, "set_scheduler", "events", i)
        if len(item) == 1:
            self.fail(where, "at_step", "the event does nothing: add set_guidance_scale, set_scheduler, note or "
                      "pause", "events", i)
        scale = item.get("set_guidance_scale")
        return Event(at_step=at_step, set_guidance_scale=None if scale is None else float(scale),
                     set_scheduler=item.get("set_scheduler"), note=item.get("note"), pause=item.get("pause", False),
                     expect=self.claims(item, at_step, where))

    def claims(self, item: dict, at_step: int | str, where: str, table: str = "events.expect") -> list:
        """The event's [[events.expect]] tables (or the description's [[expect]]) as Claims (their run names are
        checked in check_claim_runs)."""
        from ..lessons.claims import ClaimFormError, parse_claim

        tables = item.get("expect", [])
        if not all(isinstance(claim, dict) for claim in tables):
            self.fail(where, "expect", f"must be an array of tables, written [[{table}]]")
        found = []
        for claim in tables:
            seen = self._claims_seen[table] = self._claims_seen.get(table, 0) + 1
            try:
                found.append(parse_claim(claim, at_step))
            except ClaimFormError as exc:
                self.fail(f"{where}[[{table}]] #{len(found) + 1}: ", exc.key, str(exc), table, seen - 1)
        return found

    def check_claim_runs(self, settings: RunSettings) -> None:
        """Every run a claim names is "main" or a [[compare]] label."""
        labels = ["main", *(branch.label for branch in settings.compare)]
        places = [("", "[[expect]]", settings.expect)] + [
            (f"[[events]] #{number} ", "[[events.expect]]", event.expect)
            for number, event in enumerate(settings.events, start=1)]
        for event_where, table, claims in places:
            for number, claim in enumerate(claims, start=1):
                where = f"{event_where}{table} #{number}: "
                if claim.other == claim.run:
                    self.fail(where, "run", f"the claim compares {claim.run!r} with itself: name another run")
                for name in claim.runs():
                    if name not in labels:
                        key = "run" if name == claim.run else ("differs_from" if claim.kind == "differs" else "same_as")
                        self.fail(where, key,
                                  f"{name!r} is not a run of this lesson: use one of {', '.join(map(repr, labels))}")

    def branch(self, item: dict, i: int) -> CompareBranch:
        where = f"[[compare]] #{i + 1}: "
        self.check(COMPARE_KEYS, item, where, "compare", i)
        overrides = {k: v for k, v in item.items() if k != "label"}
        if not overrides:
            self.fail(where, "label", "the branch changes nothing: add e.g. guidance_scale or scheduler",
                      "compare", i)
        overrides = self.run_values(overrides, where, "compare", i)
        label = item.get("label") or ", ".join(f"{k}={v}" for k, v in item.items())
        line = self._table_line("compare", i)
        return CompareBranch(label=label, overrides=overrides,
                             where=f"{self.path}: {where.rstrip(': ')} ({label}{f', line {line}' if line else ''})")

    def _table_line(self, table: str, index: int) -> int | None:
        """Line of the index-th [[table]] header."""
        headers = [n for n, line in enumerate(self.lines, start=1) if line.strip() == f"[[{table}]]"]
        return headers[index] if index < len(headers) else None
