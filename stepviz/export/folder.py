"""Where an export is written, and the rules that keep a user's files safe.

stepviz deletes or moves only what it wrote itself:
  - `--force` replaces a folder only when it is an earlier stepviz export: its manifest.json was written
    by stepviz and the folder holds nothing but the files that manifest lists. Any other folder is refused.
  - the working folder, a folder above it, the home folder (and those above it) and `/` are never replaced.
  - a symlink given as the output folder is followed: the folder it points to is the one checked and written.
  - an export is written into a staging folder `.NAME.stepviz-partial-PID` beside its destination (or in the
    nearest folder that exists), marked as stepviz's; missing parent folders are created only once it
    succeeded. A process killed outright leaves its staging folder behind: the next export into the same place
    removes it once no process with that PID is alive.
  - the swap with an earlier export holds Ctrl-C and SIGTERM between its two renames; if the process is killed
    between them, the next export puts the earlier export back where it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
from pathlib import Path

from ..engine.checks import StepvizInputError

STAGING_MARK = ".stepviz-staging"  # written first into every staging folder, with the PID of its process
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.stepviz-(?P<kind>partial|old)-(?P<pid>\d+)$")


PACKAGE_FOLDER = Path(__file__).resolve().parent.parent  # the installed stepviz: never a place for an export


def users_folder() -> Path:
    """Where a relative export folder lands: the working folder, unless it lies inside the installed package
    (the shipped notebook run where it lies), then the home folder."""
    working = Path.cwd().resolve()
    return Path.home() if working.is_relative_to(PACKAGE_FOLDER) else working


def output_target(out) -> Path:
    """The absolute folder an `--out` value names (symlinks followed), or a one-line refusal."""
    text = str(out)
    if not text.strip():
        raise StepvizInputError("--out '' is empty: give a folder name, e.g. --out lesson-export")
    target = Path(os.path.realpath(os.path.expanduser(text)))
    protected = {Path("/"), *_with_ancestors(Path.cwd().resolve()), *_with_ancestors(Path.home().resolve())}
    if target in protected:
        what = "the working folder" if target == Path.cwd().resolve() else \
            "the home folder" if target == Path.home().resolve() else "a folder above the working or home folder"
        raise StepvizInputError(f"--out {text!r} is {what} ({target}): stepviz never writes an export over it; "
                                "give a new folder, e.g. --out lesson-export")
    if target.is_relative_to(PACKAGE_FOLDER):
        raise StepvizInputError(f"--out {text!r} lies inside the installed stepviz package ({PACKAGE_FOLDER}): an "
                                "export goes in a folder of yours, e.g. --out ~/lesson-export")
    return target


def check_output_folder(out, force: bool) -> Path:
    """Check that an export may be written to `out` (before any work); returns the folder it names."""
    target = output_target(out)
    if target.exists() and not target.is_dir():
        raise StepvizInputError(f"--out {str(out)!r} is a file: give a folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise StepvizInputError(f"--out {str(out)!r} exists and is not empty: pick another folder, or add "
                                    "--force to replace an earlier stepviz export")
        problem = not_an_export(target)
        if problem:
            raise StepvizInputError(f"--out {str(out)!r} is not an earlier stepviz export ({problem}): --force "
                                    "replaces only those; pick another folder")
    if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
        raise StepvizInputError(f"--out {str(out)!r} is read-only: stepviz cannot replace it")
    home = nearest_existing(target.parent)
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        raise StepvizInputError(f"--out {str(out)!r}: cannot write in {home} (permission denied or not a folder)")
    return target


def not_an_export(folder: Path) -> str | None:
    """None when `folder` is an earlier stepviz export holding only what stepviz wrote; else what is not."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no manifest.json"
    except (OSError, ValueError):
        return "its manifest.json is not one stepviz wrote"
    written = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(written, list) or "stepviz" not in (manifest.get("versions") or {}):
        return "its manifest.json is not one stepviz wrote"
    for entry in sorted(folder.iterdir()):
        if entry.name not in written or entry.is_symlink() or not entry.is_file():
            return f"it holds {entry.name!r}, which stepviz did not write"
    return None


def nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _with_ancestors(path: Path) -> list[Path]:
    return [path, *path.parents]


# ---------------------------------------------------------------- staging and replacing
def make_staging(target: Path) -> Path:
    """A fresh staging folder for `target`, marked as stepviz's; stale ones of dead processes are cleaned first."""
    home = nearest_existing(target.parent)
    clean_leftovers(home)
    staging = home / f".{target.name}.stepviz-partial-{os.getpid()}"
    if staging.exists():  # this very process left it (an export in the same process that failed to clean)
        shutil.rmtree(staging)
    staging.mkdir()
    (staging / STAGING_MARK).write_text(str(os.getpid()), encoding="utf-8")
    return staging


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove the staging folders of exports whose process is gone; put back an earlier export that a killed
    process had moved aside. Only folders stepviz marked or recognises as its exports are touched."""
    cleaned = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        found = LEFTOVER.match(entry.name)
        if not found or not entry.is_dir() or entry.is_symlink() or _process_alive(int(found["pid"])):
            continue
        if found["kind"] == "partial" and ((entry / STAGING_MARK).is_file() or not any(entry.iterdir())
                                           or not_an_export(entry) is None):
            shutil.rmtree(entry, ignore_errors=True)
            cleaned.append(entry)
        elif found["kind"] == "old" and not_an_export(entry) is None:
            original = folder / found["name"]
            if not original.exists():
                entry.rename(original)  # killed between the two renames: the earlier export goes back
            else:
                shutil.rmtree(entry, ignore_errors=True)
            cleaned.append(entry)
    return cleaned


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its folder alone
    return True


def move_into_place(staging: Path, target: Path, force: bool) -> None:
    """Rename the finished staging folder to `target`, replacing an earlier export; parents are made now."""
    check_output_folder(target, force)  # the folder may have changed while the run was going
    (staging / STAGING_MARK).unlink()
    created = _make_parents(target.parent)
    try:
        with _signals_held():
            if not target.exists():
                staging.rename(target)
                return
            old = target.parent / f".{target.name}.stepviz-old-{os.getpid()}"
            target.rename(old)
            try:
                staging.rename(target)
            except BaseException:
                old.rename(target)
                raise
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    missing = [p for p in _with_ancestors(folder) if not p.exists()][::-1]
    for path in missing:
        path.mkdir()
    return missing


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM (delivered afterwards) so the two renames of a swap are not split."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
