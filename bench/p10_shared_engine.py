"""P10: a class on one SharedEngine against every student alone, in one run, as ratios.

    python bench/p10_shared_engine.py --tolerance          how far batched sessions land from their solo runs
    python bench/p10_shared_engine.py --load               N = 1, 8, 30 students, human pace and full speed
    python bench/p10_shared_engine.py --memory --students 30   engine + N tab relays vs N `stepviz tui` processes

Load: each student is a thread with its own session (prompt, seed, scheduler vary), pressing space
`--steps` times, at full speed or at a human pace (a press every 0.3-0.9 s); "solo" gives each student a
plain Stepper that calls the UNet alone (what N separate `stepviz tui` processes compute), "shared" a
session of one SharedEngine (max_batch_size 32, 5 ms; its batches traced, or eager with --eager). One torch
thread for both. Figures: the class's steps per second, p50/p95 of the wait for a step (press -> record),
mean rows per UNet call.
Memory: real processes, proportional set size (PSS) from /proc/PID/smaps_rollup, so libraries shared
between processes are counted once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the lab (training/) builds the tiny tokenizer
from common import large_random_pipeline  # noqa: E402

PROMPTS = ["a red circle on a black background", "a blue square on a white background",
           "a green triangle on a black background", "a yellow star on a blue background"]
SCHEDULERS = ["ddim", "euler", "dpmpp_2m", "euler_a", "pndm", "lms"]
FLOW_SCHEDULERS = ["flow_euler", "flow_dpmpp_2m", "flow_unipc"]  # a flow model's (toy-flow)


def session_kwargs(i: int, steps: int, size: int | None = None, schedulers=SCHEDULERS) -> dict:
    size_kwargs = dict(height=size, width=size) if size else {}
    return dict(prompt=PROMPTS[i % len(PROMPTS)], seed=100 + i, num_inference_steps=steps,
                scheduler=schedulers[i % len(schedulers)], guidance_scale=[7.5, 3.0, 1.0][i % 3], **size_kwargs)


def in_threads(jobs) -> float:
    threads = [threading.Thread(target=job) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def tolerance(pipe, students: int, steps: int, size: int | None, label: str, schedulers=SCHEDULERS) -> float:
    import stepviz

    engine = stepviz.SharedEngine(pipe, max_batch_size=32, max_wait_ms=5)
    sessions = [engine.stepper(**session_kwargs(i, steps, size, schedulers)) for i in range(students)]
    in_threads([s.run for s in sessions])
    worst = 0.0
    for i, session in enumerate(sessions):
        alone = stepviz.Stepper(pipe, **session_kwargs(i, steps, size, schedulers))
        alone.run()
        worst = max(worst, float((session.latents - alone.latents).abs().max()))
    stats = engine.stats
    engine.close()
    print(f"tolerance {label}: {students} sessions x {steps} steps, rows/call {stats.rows_per_call:.1f}: "
          f"largest |batched - solo| of the final latents = {worst:.2e}")
    return worst


def load(pipe, students: int, steps: int, pace: str, shared: bool, workers: int | None = None,
         trace: bool = True) -> dict:
    import stepviz

    engine = stepviz.SharedEngine(pipe, max_batch_size=32, max_wait_ms=5, workers=workers, trace=trace) \
        if shared else None
    make = engine.stepper if shared else (lambda **kw: stepviz.Stepper(pipe, **kw))
    sessions = [make(**session_kwargs(i, steps)) for i in range(students)]
    waits: list[float] = []

    def student(session, rng: random.Random) -> None:
        for _ in range(steps):
            if pace == "human":
                time.sleep(rng.uniform(0.3, 0.9))
            pressed = time.perf_counter()
            session.step()
            waits.append(time.perf_counter() - pressed)

    cpu = time.process_time()
    wall = in_threads([lambda s=s, i=i: student(s, random.Random(i)) for i, s in enumerate(sessions)])
    cpu = time.process_time() - cpu
    result = dict(steps_per_s=students * steps / wall, cpu_ms_per_step=1000 * cpu / (students * steps),
                  cores_used=cpu / wall, p50=statistics.median(waits),
                  p95=statistics.quantiles(waits, n=20)[-1] if len(waits) > 1 else waits[0],
                  rows_per_call=engine.stats.rows_per_call if engine else 2.0)
    if engine:
        engine.close()
    return result


# ---------------------------------------------------------------- memory of real processes
def pss_mib(pid: int, fields: tuple[str, ...] = ("Pss:",)) -> float:
    """PSS (or, with fields=PRIVATE, the pages no other process shares) in MiB."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return sum(int(line.split()[1]) for line in lines if line.startswith(fields)) / 1024


PRIVATE = ("Private_Clean:", "Private_Dirty:")


def wait_for_output(read_fd: int, needle: bytes, seconds: float) -> bytes:
    seen, deadline = b"", time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(read_fd, 65536)
        except BlockingIOError:
            time.sleep(0.05)
    return seen


def solo_tui_pss(model: str, steps: int) -> tuple[float, float]:
    """One `stepviz tui` process on a pseudo-terminal, after it loaded the model and took 3 steps."""
    leader, follower = os.openpty()
    os.set_blocking(leader, False)
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120", LINES="40")
    process = subprocess.Popen([sys.executable, "-m", "stepviz", "tui", "--model", model, "--steps", str(steps)],
                               stdin=follower, stdout=follower, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    try:
        wait_for_output(leader, b"take a step", 120)
        for _ in range(3):
            os.write(leader, b" ")
            time.sleep(1.0)
        return pss_mib(process.pid), pss_mib(process.pid, PRIVATE)
    finally:
        process.kill()
        process.wait()
        os.close(leader)
        os.close(follower)


def packet(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def shared_pss(model: str, students: int, steps: int) -> tuple[float, float]:
    """(engine process PSS with `students` tabs that took 3 steps each, one tab relay process's PSS)."""
    folder = tempfile.mkdtemp(prefix="p10-")
    path = os.path.join(folder, "engine.sock")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    engine = subprocess.Popen([sys.executable, "-m", "stepviz", "tui", "--model", model, "--steps", str(steps),
                               "--shared-host", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    tabs, relay = [], None
    try:
        while b"ready" not in engine.stdout.readline():
            pass
        for _ in range(students):
            tab = socket.socket(socket.AF_UNIX)
            tab.connect(path)
            tab.sendall(json.dumps({"columns": 120, "rows": 40}).encode() + b"\n")
            threading.Thread(target=lambda t=tab: [None for _ in iter(lambda: t.recv(65536), b"")],
                             daemon=True).start()
            tabs.append(tab)
        time.sleep(5 + students * 0.5)
        for _ in range(3):
            for tab in tabs:
                tab.sendall(packet(b"D", b" "))
            time.sleep(1.0 + students * 0.1)
        relay = subprocess.Popen([sys.executable, "-m", "stepviz.tui.shared_client", path],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        time.sleep(3)
        return pss_mib(engine.pid), pss_mib(relay.pid)
    finally:
        for process in (relay, engine):
            if process is not None:
                process.kill()
                process.wait()
        for tab in tabs:
            tab.close()
        os.unlink(path) if os.path.exists(path) else None
        os.rmdir(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tolerance", action="store_true")
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--students", type=int, nargs="*", default=[1, 8, 30])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--paces", nargs="*", default=["human", "full"], choices=["human", "full"])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--eager", action="store_true", help="the shared engine runs its batches eagerly, untraced")
    args = parser.parse_args()
    import torch

    import stepviz

    torch.set_num_threads(1)
    if args.tolerance:
        tolerance(stepviz.load_pipeline(args.model), 30, 30, None, args.model)
        tolerance(large_random_pipeline(64), 4, 4, 64, "SD-width random UNet, 64x64 px")
        for run in range(3):  # the toy flow model: each run's batches are made up as the threads arrive
            tolerance(stepviz.load_pipeline("toy-flow"), 8, 20, None, f"toy-flow, run {run + 1}", FLOW_SCHEDULERS)
    if args.load:
        from stepviz.run.shared_engine import default_workers

        pipe = stepviz.load_pipeline(args.model)
        load(pipe, 2, 2, "full", True, trace=not args.eager)  # warm-up (and the batches' trace)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; shared engine: "
              f"{default_workers(pipe)} batches at once (workers), {'eager' if args.eager else 'traced'}")
        print("| students | pace | class steps/s shared / solo | ratio | p50 wait shared / solo | "
              "p95 wait shared / solo | rows per UNet call | CPU ms per step shared / solo | "
              "cores used shared / solo |")
        print("|---|---|---|---|---|---|---|---|---|")
        for students in args.students:
            for pace in args.paces:
                solo, shared = (load(pipe, students, args.steps, pace, s, trace=not args.eager) for s in (False, True))
                print(f"| {students} | {pace} | {shared['steps_per_s']:.1f} / {solo['steps_per_s']:.1f} | "
                      f"{shared['steps_per_s'] / solo['steps_per_s']:.2f} | "
                      f"{1000 * shared['p50']:.0f} / {1000 * solo['p50']:.0f} ms | "
                      f"{1000 * shared['p95']:.0f} / {1000 * solo['p95']:.0f} ms | {shared['rows_per_call']:.1f} | "
                      f"{shared['cpu_ms_per_step']:.1f} / {solo['cpu_ms_per_step']:.1f} | "
                      f"{shared['cores_used']:.2f} / {solo['cores_used']:.2f} |", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.memory:
        students = max(args.students)
        tui, tui_private = solo_tui_pss(args.model, args.steps)
        engine, relay = shared_pss(args.model, students, args.steps)
        # N separate processes would share their libraries' pages: the first counts whole, the others their own
        shared, separate = engine + students * relay, tui + (students - 1) * tui_private
        print(f"memory, {students} students: one `stepviz tui` {tui:.0f} MiB PSS ({tui_private:.0f} MiB its own); "
              f"engine with {students} tabs {engine:.0f} MiB + {students} relays x {relay:.1f} MiB = {shared:.0f} MiB; "
              f"{students} separate TUI processes {separate:.0f} MiB (one whole + the others' own pages); "
              f"ratio shared / separate = {shared / separate:.3f}")


if __name__ == "__main__":
    main()
