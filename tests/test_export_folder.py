"""Nothing lost: `--force` replaces only an earlier stepviz export, never a user's folder; no leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stepviz.cli import main
from stepviz.engine.checks import StepvizInputError
from stepviz.export.folder import STAGING_MARK, check_output_folder
from stepviz.export.run_export import export_run
from stepviz.run.settings import RunSettings

FAST = dict(steps=2, height=32, width=32)


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir):
    from stepviz.models import load_pipeline

    return load_pipeline(str(tiny_model_dir))


@pytest.fixture
def settings(tiny_model_dir):
    return RunSettings(model=str(tiny_model_dir), **FAST)


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): to show that nothing changed."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("\\documentclass{article} three years of work")
    (path / "photos").mkdir()
    (path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 not really a cat")
    return path


def cli_export(capsys, out, *options) -> tuple[int, str]:
    code = main(["export", "--out", str(out), "--preview", "approx", *map(str, options)])
    return code, capsys.readouterr().err.strip()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_force_on_a_folder_of_user_files_is_refused(tmp_path, capsys, tiny_model_dir):
    out = user_folder(tmp_path / "work")
    before = tree(tmp_path)
    code, message = cli_export(capsys, out, "--force", "--model", tiny_model_dir, "--steps", "2")
    assert code == 2 and len(message.splitlines()) == 1, message
    assert "not an earlier stepviz export" in message and str(out) in message and "no manifest.json" in message
    assert tree(tmp_path) == before


@pytest.mark.parametrize("out", [".", "", "./", "x/..", "~", "/", "..", "UP"])
def test_the_working_home_and_root_folders_are_never_replaced(tmp_path, capsys, monkeypatch, out):
    home = user_folder(tmp_path / "home")
    work = user_folder(home / "work")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    code, message = cli_export(capsys, home if out == "UP" else out, "--force")
    assert code == 2 and len(message.splitlines()) == 1, message
    assert ("is empty" if out == "" else "never writes an export over it") in message
    assert tree(tmp_path) == before


def test_out_dot_inside_a_folder_of_user_files(tmp_path, capsys, monkeypatch, tiny_model_dir):
    work = user_folder(tmp_path / "thesis")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    for options in ([], ["--force"]):
        code, message = cli_export(capsys, ".", *options, "--model", tiny_model_dir)
        assert code == 2 and "Traceback" not in message
    assert "the working folder" in message
    assert tree(tmp_path) == before


def test_re_export_with_force_replaces_an_earlier_export(tmp_path, settings, tiny_loaded):
    out = tmp_path / "out"
    export_run(settings, out, kind="approx", pipe=tiny_loaded)
    first = json.loads((out / "manifest.json").read_text())
    with pytest.raises(StepvizInputError, match="--force"):
        export_run(settings, out, kind="approx", pipe=tiny_loaded)
    export_run(settings.with_overrides(seed=7), out, kind="approx", force=True, pipe=tiny_loaded)
    second = json.loads((out / "manifest.json").read_text())
    assert (first["seed"], second["seed"]) == (42, 7)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging or old folder left
    assert sorted(os.listdir(out)) == sorted(second["files"])


def test_an_earlier_export_with_a_user_file_added_is_refused(tmp_path, settings, tiny_loaded):
    out = tmp_path / "out"
    export_run(settings, out, kind="approx", pipe=tiny_loaded)
    (out / "my-notes.md").write_text("what I saw")
    before = tree(tmp_path)
    with pytest.raises(StepvizInputError, match="it holds 'my-notes.md', which stepviz did not write"):
        export_run(settings, out, kind="approx", force=True, pipe=tiny_loaded)
    assert tree(tmp_path) == before


def test_a_symlinked_out_is_followed(tmp_path, settings, tiny_loaded):
    real = tmp_path / "real"
    export_run(settings, real, kind="approx", pipe=tiny_loaded)
    link = tmp_path / "link"
    link.symlink_to(real)
    export_run(settings.with_overrides(seed=9), link, kind="approx", force=True, pipe=tiny_loaded)
    assert link.is_symlink() and link.resolve() == real
    assert json.loads((real / "manifest.json").read_text())["seed"] == 9
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


def test_a_symlink_to_a_user_folder_is_refused(tmp_path, settings, tiny_loaded):
    user_folder(tmp_path / "mine")
    (tmp_path / "link").symlink_to(tmp_path / "mine")
    before = tree(tmp_path)
    with pytest.raises(StepvizInputError, match="not an earlier stepviz export"):
        export_run(settings, tmp_path / "link", kind="approx", force=True, pipe=tiny_loaded)
    assert tree(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_earlier_export_is_refused(tmp_path, settings, tiny_loaded):
    out = tmp_path / "out"
    export_run(settings, out, kind="approx", pipe=tiny_loaded)
    out.chmod(0o555)
    try:
        before = tree(tmp_path)
        with pytest.raises(StepvizInputError, match="read-only"):
            export_run(settings, out, kind="approx", force=True, pipe=tiny_loaded)
        assert tree(tmp_path) == before
    finally:
        out.chmod(0o755)


def test_a_read_only_folder_is_refused_before_anything_runs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != out)  # also as root
    with pytest.raises(StepvizInputError, match="read-only"):
        check_output_folder(out, force=True)
    parent = tmp_path / "locked"
    parent.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != parent)
    with pytest.raises(StepvizInputError, match="cannot write in"):
        check_output_folder(parent / "a" / "out", force=False)


def test_a_failed_export_leaves_no_parents_and_no_staging(tmp_path, settings, tiny_loaded, monkeypatch):
    import stepviz.export.run_export

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(stepviz.export.run_export, "write_export", broken)
    with pytest.raises(RuntimeError):
        export_run(settings, tmp_path / "a" / "b" / "out", kind="approx", pipe=tiny_loaded)
    assert os.listdir(tmp_path) == []


def test_parents_are_created_when_the_export_succeeds(tmp_path, settings, tiny_loaded):
    out = export_run(settings, tmp_path / "a" / "b" / "out", kind="approx", pipe=tiny_loaded)
    assert (out / "index.html").is_file() and os.listdir(tmp_path) == ["a"]


def test_leftovers_of_dead_processes_are_cleaned_and_live_ones_kept(tmp_path, settings, tiny_loaded):
    gone = dead_pid()
    stale = tmp_path / f".out.stepviz-partial-{gone}"
    stale.mkdir()
    (stale / STAGING_MARK).write_text(str(gone))
    (stale / "strip.png.tmp").write_bytes(b"half a picture")
    live = tmp_path / f".out.stepviz-partial-{os.getppid()}"  # the process that started pytest is alive
    live.mkdir()
    (live / STAGING_MARK).write_text(str(os.getppid()))
    foreign = tmp_path / f".mine.stepviz-partial-{gone}"  # named like ours but not marked: not ours
    user_folder(foreign)
    export_run(settings, tmp_path / "out", kind="approx", pipe=tiny_loaded)
    assert not stale.exists() and live.is_dir() and (foreign / "thesis.tex").is_file()


def test_an_export_moved_aside_by_a_killed_process_is_put_back(tmp_path, settings, tiny_loaded):
    export_run(settings, tmp_path / "out", kind="approx", pipe=tiny_loaded)
    aside = tmp_path / f".out.stepviz-old-{dead_pid()}"
    (tmp_path / "out").rename(aside)  # as if killed between the two renames of a replace
    check = tmp_path / "elsewhere"
    export_run(settings, check, kind="approx", pipe=tiny_loaded)  # any export in the same folder repairs it
    assert (tmp_path / "out" / "manifest.json").is_file() and not aside.exists()


def test_a_sigkilled_exports_partial_folder_is_cleaned_by_the_next_run(tmp_path, tiny_model_dir, settings,
                                                                      tiny_loaded):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "stepviz", "export", "--model", str(tiny_model_dir), "--steps", "1000",
         "--height", "32", "--width", "32", "--preview", "approx", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 60
    partial = tmp_path / f".out.stepviz-partial-{process.pid}"
    while not (partial / STAGING_MARK).is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the export never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert partial.is_dir()  # SIGKILL cannot be caught: the staging folder stays ...
    export_run(settings, out, kind="approx", pipe=tiny_loaded)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # ... until the next export into the same place


def test_an_export_stopped_on_nan_says_so_and_exits_3(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "out"
    code, message = cli_export(capsys, out, "--model", tiny_model_dir, "--guidance", "1e30", *[
        f"--{k}={v}" for k, v in FAST.items()])
    assert code == 3, message
    assert "stepviz: stopped: NaN/Inf first appeared" in message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stopped"] in message and 1 <= manifest["steps_run"] <= 2
    assert "stopped early" in (out / "index.html").read_text()
