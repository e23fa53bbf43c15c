"""Writing files so that a reader never sees half of one: write a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from daif.errors import UsageError


def temporary_sibling(path: str | os.PathLike) -> Path:
    """`.NAME.tmp-XXXXXXXX.SUFFIX` beside `path` (the suffix kept, so writers that infer a format still do)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` on success and is removed on failure."""
    temporary = temporary_sibling(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for several files written together: all replace their targets only when every
    write succeeded, and all are removed otherwise (all or nothing, up to the renames themselves)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(path)) for path in paths]


def check_output_folder(folder: str | os.PathLike, names: Sequence[str], flag: str = "--out") -> Path:
    """Check, before any work, that `folder` can receive the files `names`: it is a folder or can be made
    one, it is writable, and no `names` entry exists there as a folder. Returns the absolute folder;
    raises UsageError naming `flag`, the path and what was expected."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        if existing.is_symlink():
            raise UsageError(f"{flag}: {existing} is a broken symbolic link; expected a folder")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under {existing}, which is a file"
        raise UsageError(f"{flag}: {folder} {where}; expected a folder (existing or new)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: {folder}: {existing} is not writable")
    if existing == folder:
        for name in names:
            if (folder / name).is_dir():
                raise UsageError(f"{flag}: {folder / name} is a folder; it would be replaced by a file: remove it or choose another {flag}")
    return folder
