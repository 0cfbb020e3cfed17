"""Write files so that a failure never leaves a half-written one behind, and check output paths before any work.

- `write_atomic` / `write_bytes_atomic` / `write_text_atomic`: one file, written to a temp file beside it and renamed.
- `write_dir_atomic`: a whole folder (an export), filled in a temp folder beside it and swapped in as a whole, so an
  interrupted or failed write (Ctrl-C, a full disk) leaves the old folder exactly as it was and no mix of old and new.
- `commit_files`: several files of a folder that also holds other files (a training run's model.pt, metrics.json,
  plots and card beside its recipe.yaml), all written to a staging folder first and then renamed into place together
  with Ctrl-C held back, so either every one of them is new or none is.
- `check_out_dir` / `check_out_file`: an output path that is a file, lies under a file or cannot be written is
  reported in one line before a command starts its work (training, calibration), not after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from edgemem.errors import EdgememError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def _one_line(path: Path) -> Iterator[None]:
    """A failed write (a full disk, a read-only file system) is the user's one-line error, not a traceback."""
    try:
        yield
    except OSError as e:
        raise EdgememError(f"cannot write {path} ({e.strerror or e})") from None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it over ``path``."""
    with _one_line(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a release file is readable like any other
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) for the few renames that make a write visible; a Ctrl-C that arrived meanwhile is
    raised as KeyboardInterrupt once they are done. Outside the main thread signals cannot be handled: no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending and previous is signal.default_int_handler:
        raise KeyboardInterrupt
    if pending and callable(previous):
        previous(signal.SIGINT, None)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def write_dir_atomic(dest: Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(tmp)`` on an empty temp folder beside ``dest``, then put it in place of ``dest`` as a whole.

    An existing ``dest`` is swapped out in one rename (RENAME_EXCHANGE; elsewhere two renames with Ctrl-C held back)
    and removed; if ``fill`` fails or is interrupted, the temp folder is removed and ``dest`` is untouched. A
    symlinked ``dest`` is replaced where it points."""
    if dest.is_symlink():
        dest = dest.resolve()
    with _one_line(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with _one_line(dest):
            fill(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        with _one_line(dest), interrupts_held():
            if dest.is_dir() and _exchange(tmp, dest):
                pass  # tmp now holds the old folder, removed below
            elif dest.is_dir():
                old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
                os.rename(dest, old)  # replaces the empty `old`
                try:
                    os.rename(tmp, dest)
                except BaseException:
                    os.rename(old, dest)
                    raise
                os.rename(old, tmp)  # removed below
            else:
                os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit_files(folder: Path, writers: dict[str, Callable[[Path], None]], remove: tuple[str, ...] = ()) -> None:
    """Write ``folder/NAME`` for every ``NAME: write`` (``write(path)`` writes one file) all or nothing.

    Every file is written into a staging folder inside ``folder`` first (a full disk or Ctrl-C there leaves
    ``folder`` as it was); then, with Ctrl-C held back, each is renamed into place and the files in ``remove`` are
    deleted (e.g. a resume state that the committed files supersede)."""
    with _one_line(folder):
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=folder))
    try:
        for name, write in writers.items():
            with _one_line(folder / name):
                write(staging / name)
                os.chmod(staging / name, 0o666 & ~_umask())
        with _one_line(folder), interrupts_held():
            for name in writers:
                os.replace(staging / name, folder / name)
            for name in remove:
                (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------- output path checks

def _existing_ancestor(path: Path) -> Path:
    """The nearest path at or above ``path`` that exists (a folder, or the file a path wrongly lies under)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path, what: str, path: Path) -> None:
    """Create and remove a temp file in ``folder``: the one honest writability test (root ignores mode bits, a
    read-only mount does not)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".edgemem-probe.", dir=folder)
    except OSError as e:
        raise EdgememError(f"{what} {path} cannot be written ({folder}: {e.strerror or e})") from None
    os.close(fd)
    os.unlink(name)


def _not_under_a_file(folder: Path, what: str, path: Path) -> Path:
    """The nearest existing folder at or above ``folder`` (where ``path`` will be created)."""
    anc = _existing_ancestor(folder)
    if not anc.is_dir():
        raise EdgememError(f"{what} {path} lies under {anc}, which is a file, not a folder")
    return anc


def check_out_dir(path: Path, what: str = "output folder", whole: bool = False) -> None:
    """An output folder: a folder or not there yet, not under a file, and writable (where it will be created).
    ``whole``: it is replaced as a whole (write_dir_atomic), so the folder holding it must be writable too, and it
    must not be the current folder or one above it."""
    if path.exists() and not path.is_dir():
        raise EdgememError(f"{what} {path} is an existing file, not a folder")
    _probe(_not_under_a_file(path, what, path), what, path)
    if whole and path.exists():
        real = path.resolve()
        if real == Path.cwd().resolve() or real in Path.cwd().resolve().parents:
            raise EdgememError(f"{what} {path} is the current folder or above it; it would be replaced as a whole")
        _probe(real.parent, what, path)


def check_out_file(path: Path, what: str = "output file") -> None:
    """An output file: not a folder, not under a file, and its folder writable (where it will be created)."""
    if path.is_dir():
        raise EdgememError(f"{what} {path} is a folder, not a file")
    if path.name in ("", ".", ".."):
        raise EdgememError(f"{what} {path} names no file")
    _probe(_not_under_a_file(path.parent, what, path), what, path)
