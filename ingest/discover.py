"""Finding the files to ingest: globs, symlink loops, missing paths, unreadable folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from quarry.ingest.records import Outcome, SourceFile


def matches(rel: str, patterns: Iterable[str]) -> bool:
    """gitignore-like: a pattern without '/' matches any path component, else the whole path."""
    parts = PurePosixPath(rel).parts
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatchcase(rel, pattern) or fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif any(fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def discover(
    paths: Sequence[Path],
    *,
    supported: Iterable[str],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[SourceFile], list[Outcome]]:
    """Every file to ingest under `paths`, plus a report line for each one that cannot be.

    A file given by name is ingested whatever its glob; unsupported formats found in folders
    are reported as skipped, so nothing is dropped silently.
    """
    suffixes = {s.lower() for s in supported}
    found: list[SourceFile] = []
    problems: list[Outcome] = []
    for given in paths:
        path = Path(given).absolute()
        if path.is_symlink() and not path.exists():
            problems.append(Outcome(str(given), "failed", "broken symbolic link"))
        elif not path.exists():
            problems.append(Outcome(str(given), "failed", "path does not exist"))
        elif path.is_file():
            if path.suffix.lower() in suffixes:
                found.append(SourceFile(path, path.parent, path.name))
            else:
                problems.append(Outcome(str(given), "skipped", _unsupported(path)))
        else:
            _walk(path, suffixes, include, exclude, found, problems)
    return found, problems


def _walk(
    root: Path,
    suffixes: set[str],
    include: Sequence[str],
    exclude: Sequence[str],
    found: list[SourceFile],
    problems: list[Outcome],
) -> None:
    """os.walk following links, refusing to enter a folder it is already inside (a loop)."""
    seen: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        reason = "permission denied" if isinstance(exc, PermissionError) else str(exc.strerror)
        problems.append(Outcome(str(exc.filename), "failed", f"cannot list folder: {reason}"))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=True):
        here = Path(folder)
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:
            problems.append(Outcome(str(here), "failed", _revisit_reason(here, root, st)))
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        rel_folder = here.relative_to(root).as_posix()
        kept = []
        for name in sorted(dirs):
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if matches(rel, exclude):
                continue
            if not (here / name).exists():
                problems.append(Outcome(str(here / name), "failed", "broken symbolic link"))
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if matches(rel, exclude) or (include and not matches(rel, include)):
                continue
            if path.is_symlink() and not path.exists():
                problems.append(Outcome(str(path), "failed", "broken symbolic link"))
            elif path.suffix.lower() not in suffixes:
                problems.append(Outcome(str(path), "skipped", _unsupported(path)))
            else:
                found.append(SourceFile(path, root, rel))


def _revisit_reason(here: Path, root: Path, st: os.stat_result) -> str:
    """A folder reached twice: through a link to one of its own parents (a loop) or not."""
    for parent in here.parents:
        pst = parent.stat()
        if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino):
            return "symbolic link loop; not followed"
        if parent == root:
            break
    return "folder already ingested through another link; not followed"


def _unsupported(path: Path) -> str:
    return f"unsupported format ({path.suffix or 'no extension'})"
