"""Command line: argument parsing and wiring only.

    stepviz                       the TUI on the toy model with a default prompt
    stepviz tui [SCENARIO] [...]  the TUI (a lesson file, or the options below)
    stepviz serve [...]           the TUI in a browser (textual-serve), on 127.0.0.1 by default
    stepviz export [SCENARIO] --out DIR [...]   headless strips, animation, metrics, handout
    stepviz grid [SCENARIO] --out DIR --seeds N   N seeds x guidance scales, with the checker's counts
    stepviz scenarios             the ready lessons
    stepviz lessons check [LESSON ...]   play lessons headless, test every claim their notes make
    stepviz schedulers            the schedulers, with family and order
    stepviz trace SCRIPT.py [ARGS] [--open]   run your own sampling loop, name its first divergence from the pipeline
"""

from __future__ import annotations

import argparse
import functools
import sys

# RunSettings fields the run options set (dest = the field; the API's name where it differs is in --help)
RUN_OPTIONS = ("model", "prompt", "negative_prompt", "seed", "steps", "guidance_scale", "scheduler", "mode", "image",
               "mask_image", "depth_map", "strength", "height", "width", "device", "dtype", "variant",
               "vae_tiling", "prediction_type")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    from .engine import defaults
    from .engine.checks import MODES
    from .engine.schedulers import SCHEDULERS

    parser.add_argument("scenario", nargs="?", help="a lesson file (TOML) or the name of a ready lesson")
    parser.add_argument("--model", help="'toy' (default), a local diffusers folder, a cached hub id, or a "
                        "single-file .safetensors checkpoint (SD 1.x, 2.x, SDXL)")
    parser.add_argument("--prompt", help="the text prompt")
    parser.add_argument("--negative-prompt", dest="negative_prompt", help="the negative prompt (CFG's uncond branch)")
    parser.add_argument("--seed", type=int, help=f"random seed (default {defaults.SEED})")
    parser.add_argument("--steps", "--num-inference-steps", dest="steps", type=int, metavar="N",
                        help=f"number of inference steps (API: num_inference_steps, lessons: steps; "
                        f"default {defaults.NUM_INFERENCE_STEPS})")
    parser.add_argument("--guidance", "--guidance-scale", dest="guidance_scale", type=float, metavar="SCALE",
                        help=f"classifier-free guidance scale (API and lessons: guidance_scale; "
                        f"default: the model's pipeline's, {defaults.describe_guidance_defaults()})")
    parser.add_argument("--scheduler", help=f"{', '.join(SCHEDULERS)} "
                        "(default: the model's own scheduler, as its pipeline runs it)")
    parser.add_argument("--mode", help=f"{', '.join(MODES)} (default {MODES[0]})")
    parser.add_argument("--image", help="input picture for img2img / inpaint / depth2img")
    parser.add_argument("--mask", "--mask-image", dest="mask_image", metavar="FILE",
                        help="mask picture for inpaint, white = repaint (API and lessons: mask_image)")
    parser.add_argument("--depth-map", dest="depth_map",
                        help="greyscale depth picture for depth2img (bright = near; default: the model's estimator)")
    parser.add_argument("--strength", type=float, help="img2img / inpaint strength in [0, 1]")
    parser.add_argument("--height", type=int, help="picture height, a multiple of 8 (at most what memory holds: "
                        "VAE decode + UNet activations + records per step, see README)")
    parser.add_argument("--width", type=int, help="picture width, a multiple of 8 (the same memory limit)")
    parser.add_argument("--device", help="auto (default: CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", help="auto (default: float16 on a GPU, float32 on the CPU), float32, float16 "
                        "or bfloat16")
    parser.add_argument("--variant", help="load the weight files *.VARIANT.safetensors, e.g. fp16 "
                        "(default: found by itself when only one kind is there)")
    parser.add_argument("--prediction-type", dest="prediction_type",
                        help="a single-file SD 2.x checkpoint: v_prediction (768 px models) or epsilon (-base)")
    parser.add_argument("--vae-tiling", dest="vae_tiling", action="store_true", default=None,
                        help="decode full previews tile by tile and one picture at a time (diffusers' tiled and "
                        "sliced VAE decode: less memory for big pictures)")


def _add_lesson_play_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-at", dest="start_at", type=int,
                        help="open with N steps taken (the lesson's events before step N applied, their notes shown)")
    parser.add_argument("--auto", action="store_true",
                        help="play by itself: hold at each note for the lesson's pace, then go on to the next")
    parser.add_argument("--pace", type=float, help="seconds each note stays when playing by itself (implies --auto)")


def build_parser() -> argparse.ArgumentParser:
    from .export.seed_grid import DEFAULT_SCALES
    from .render import PREVIEW_KINDS

    # no abbreviated options (--max for --max-sessions): serve passes the options it does not know on to every
    # tab's `stepviz tui`, which would refuse them there, in each student's tab
    parser = argparse.ArgumentParser(prog="stepviz", description="A step debugger for diffusion sampling loops.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", parser_class=functools.partial(argparse.ArgumentParser,
                                                                               allow_abbrev=False))
    tui = sub.add_parser("tui", help="step through a run in the terminal UI")
    _add_run_options(tui)
    tui.add_argument("--graphics", default="halfcell", choices=("auto", "sixel", "tgp", "halfcell"),
                     help="how pictures are drawn (default halfcell: works everywhere)")
    serve = sub.add_parser("serve", help="serve the TUI in a web browser (for projecting in class)")
    _add_run_options(serve)
    for parser_ in (tui, serve):
        _add_lesson_play_options(parser_)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port, 1..65535 (default 8000)")
    serve.add_argument("--max-sessions", dest="max_sessions", type=int,
                       help="browser tabs served at once, each a process with its own model (default: what free "
                            "memory holds, about 450 MiB plus twice the weights per session)")
    serve.add_argument("--no-token", dest="no_token", action="store_true",
                       help="beyond loopback, do not require the random access token printed in the URL")
    serve.add_argument("--shared", action="store_true",
                       help="class mode: one engine process holds the model and batches every tab's UNet calls; "
                            "each tab's own process is a small relay without torch")
    serve.add_argument("--solo", action="store_true",
                       help="with --shared: every UNet call alone, bit-exact with `stepviz tui` (still one model)")
    serve.add_argument("--engine", default="local", metavar="local|ray|ray://HOST:PORT",
                       help="with --shared: where the batched UNet calls run: in the engine process (local, the "
                            "default), on a Ray Serve deployment on a local Ray instance (ray), or on a running Ray "
                            "cluster (ray://HOST:PORT, or auto); needs pip install 'stepviz[cluster]'")
    tui.add_argument("--shared-host", dest="shared_host", help=argparse.SUPPRESS)  # serve --shared's engine
    tui.add_argument("--solo", action="store_true", help=argparse.SUPPRESS)
    tui.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    export = sub.add_parser("export", help="write strips, animation, metrics and a handout, headless",
                            epilog="exit codes: 0 written, 2 bad input (nothing written), 3 the NaN/Inf watchdog "
                                   "stopped the run (the steps that ran are written), 130 interrupted")
    _add_run_options(export)
    export.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty; "
                        "a symlink is followed)")
    export.add_argument("--every", type=int, default=1, help="keep every N-th step in strips (default 1)")
    export.add_argument("--preview", default="full", choices=PREVIEW_KINDS, help="picture kind")
    export.add_argument("--format", default="webp", choices=("webp", "gif"), help="animation format")
    export.add_argument("--force", action="store_true",
                        help="replace an earlier stepviz export (recognised by its manifest; never other files)")
    export.add_argument("--attention-steps", dest="attention_steps",
                        help="steps shown in attention.png, numbered from 1 as on screen, e.g. 1,7,13,25 "
                             "(default: 6 from first to last)")
    grid_scales = ",".join(f"{s:g}" for s in DEFAULT_SCALES)
    grid = sub.add_parser("grid", help="one prompt over N seeds x guidance scales, with the checker's counts")
    _add_run_options(grid)
    grid.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty)")
    grid.add_argument("--seeds", type=int, default=8, help="how many seeds (default 8)")
    grid.add_argument("--first-seed", dest="first_seed", type=int, default=0, help="the first seed (default 0)")
    grid.add_argument("--scales", help=f"guidance scales, comma-separated (default {grid_scales})")
    grid.add_argument("--force", action="store_true",
                      help="replace an earlier stepviz grid (recognised by its manifest; never other files)")
    sub.add_parser("scenarios", help="list the ready lessons")
    lessons = sub.add_parser("lessons", help="the ready lessons: list them, or check every claim their notes make")
    lessons_sub = lessons.add_subparsers(dest="lessons_command", required=True)
    check = lessons_sub.add_parser("check", help="play lessons headless and test every claim (exit 1 if one fails)")
    check.add_argument("lessons", nargs="*", help="lesson names or files (default: every ready lesson)")
    lessons_sub.add_parser("list", help="list the ready lessons (as `stepviz scenarios`)")
    sub.add_parser("schedulers", help="list the schedulers with family and order")
    trace = sub.add_parser("trace", help="run a script's own sampling loop traced; report its first divergence "
                                         "from the pipeline (exit 1 when there is one)")
    trace.add_argument("script", help="a Python script that builds a pipeline and runs its loop, or a shipped "
                                      "example: course-loop")
    trace.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script (sys.argv[1:])")
    trace.add_argument("--open", action="store_true", help="then step through the loop beside the pipeline's run")
    trace.add_argument("--graphics", default="halfcell", choices=("auto", "sixel", "tgp", "halfcell"))
    return parser


def settings_from_args(args):
    """RunSettings from a scenario (if given) with the explicit command-line options on top."""
    from .run.settings import RunSettings

    if args.scenario:
        from .run.lesson_file import load_lesson

        settings = load_lesson(args.scenario)
    else:
        settings = RunSettings()
    overrides = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k) is not None}
    if getattr(args, "start_at", None) is not None:
        overrides["start_at"] = args.start_at
    if getattr(args, "pace", None) is not None or getattr(args, "auto", False):
        from .lessons.pacing import DEFAULT_PACE

        overrides["auto_pace"] = args.pace if args.pace is not None else settings.pace or DEFAULT_PACE
    return settings.with_overrides(**overrides)


def run_trace_command(args) -> int:
    """Print the report of each traced loop; 0 when every loop matches its pipeline, 1 when one diverges or the
    script raised (its own traceback shown), 2 when there is nothing to compare."""
    from .engine.checks import StepvizInputError
    from .trace.script import run_traced
    from .lessons.shipped import script_path
    from .models.loading import quiet_libraries

    path = script_path(args.script)
    if args.open and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise StepvizInputError("--open needs a terminal (standard input and output are not one): run it in a "
                                "terminal, or leave --open out for the report alone")
    quiet_libraries()
    traces, ending = run_traced(path, args.script_args)
    if ending.traceback_text:
        print(ending.traceback_text, file=sys.stderr)
    if not traces:
        if ending.how == "exception":
            return 1
        if ending.message:
            raise StepvizInputError(f"{path.name} stopped before it stepped a loop: {ending.message}")
        status = f" (it exited with status {ending.code})" if ending.code else ""
        raise StepvizInputError(f"{path.name} never stepped a scheduler of a Stable Diffusion or flow pipeline it "
                                f"built{status}: nothing to compare (build the pipeline inside the script, e.g. "
                                "stepviz.load_pipeline('toy'), and run its loop)")
    reports = []
    for tr in traces:
        report = tr.compare()
        reports.append((tr, report))
        print(report)
    if len(reports) > 1:
        print(f"stepviz trace: {len(reports)} loops traced, each compared on its own above")
    if ending.describe():
        print(f"stepviz trace: {ending.describe()}")
    if args.open and not hasattr(reports[-1][0], "recording"):  # a flow loop: its report is the whole story
        print("stepviz trace: --open steps Stable Diffusion loops; a flow loop's report is the one above",
              file=sys.stderr)
    elif args.open:
        from .tui.trace_app import run_trace_app

        tr, report = reports[-1]
        run_trace_app(tr, report, graphics=args.graphics)
    diverged = any(report.first_divergence is not None for _, report in reports)
    return 1 if diverged or ending.how == "exception" else 0


def _list_schedulers() -> int:
    from .engine.schedulers import ALL_SCHEDULERS

    print(f"{'name':<13} {'family':<7} {'order':<6} description")
    for info in ALL_SCHEDULERS.values():
        print(f"{info.name:<13} {info.family:<7} {info.order:<6} {info.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # `stepviz scenarios | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


def _reporting_input_errors(function, *args) -> int:
    """function(*args), with a bad value or a missing model reported in one line and exit status 2."""
    from .engine.checks import StepvizInputError
    from .models import ModelLoadError

    try:
        return function(*args)
    except (StepvizInputError, ModelLoadError) as exc:
        print(f"stepviz: error: {exc}", file=sys.stderr)
        return 2


def _list_or_check(args) -> int:
    """`stepviz schedulers`, `stepviz lessons` (or `scenarios`) and `stepviz lessons check`: no run to open."""
    if args.command == "schedulers":
        return _list_schedulers()
    if args.command == "lessons" and args.lessons_command == "check":
        from .run.lesson_check import run_check_command

        return _reporting_input_errors(run_check_command, args.lessons)
    from .lessons.shipped import list_scenarios

    for name, line in list_scenarios():
        print(f"{name:<24} {line}")
    return 0


def _run_command(args, argv: list[str]) -> int:
    """The commands that run the model: trace, grid, export, serve, the shared engine's host, the TUI."""
    if args.command == "trace":
        args.open = args.open or "--open" in args.script_args  # `stepviz trace SCRIPT.py --open` too
        args.script_args = [a for a in args.script_args if a != "--open"]
        return run_trace_command(args)
    settings = settings_from_args(args)
    settings.validate()
    if args.command == "grid":
        from .export.seed_grid import run_grid_command

        return run_grid_command(settings, args)
    if args.command == "export":
        from .export.run_export import run_export_command

        return run_export_command(settings, args)
    if args.command == "serve":
        from .tui.serve import serve

        return serve(settings, args, argv)
    if args.shared_host:
        from .tui.shared_host import host

        return host(settings, args.shared_host, solo=args.solo, engine=args.engine)
    from .tui.app import run_app

    return run_app(settings, graphics=args.graphics)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["tui", *argv]  # `stepviz` and `stepviz --model toy ...` open the TUI, as `stepviz tui ...`
    args = parser.parse_args(argv)
    if args.command in ("schedulers", "scenarios", "lessons"):
        return _list_or_check(args)
    from .engine.checks import StepvizInputError
    from .models import ModelLoadError
    from .models.device import DeviceError

    try:
        return _run_command(args, argv)
    except (StepvizInputError, ModelLoadError, DeviceError) as exc:
        print(f"stepviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except OSError as exc:  # the machine's own failure (a full disk, a folder that takes no files): exit 1
        if isinstance(exc, BrokenPipeError):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"stepviz: error: {exc.strerror or exc}{where}; nothing was left half-written", file=sys.stderr)
        return 1
    except Exception as exc:
        if not isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C inside an import comes wrapped
            raise
        return _interrupted()


def _interrupted() -> int:
    """Ctrl-C was handled: say so and exit with 130.

    CPython 3.11 marks a KeyboardInterrupt raised inside PyRun_String (which some compiled
    libraries call while importing) as unhandled even when it is caught, and then ends the
    process by SIGINT instead of with our status; the mark is cleared here.
    """
    print("stepviz: interrupted", file=sys.stderr)
    try:
        import ctypes

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, ValueError, AttributeError):  # another interpreter: nothing to clear
        pass
    return 130
