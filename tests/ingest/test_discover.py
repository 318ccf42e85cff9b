"""Which files a run sees, and a reported reason for every one it cannot use."""

from __future__ import annotations

from pathlib import Path

from quarry.ingest.discover import discover, matches
from quarry.ingest.loaders import LOADERS


def _find(*paths: Path, **kwargs: object):
    return discover(list(paths), supported=LOADERS, **kwargs)  # type: ignore[arg-type]


def test_globs_match_names_at_any_depth_or_whole_paths() -> None:
    assert matches("a/node_modules/x.md", ["node_modules"])
    assert matches("docs/x.md", ["docs/*.md"])
    assert not matches("docs/sub/x.txt", ["*.md"])
    assert matches("docs/sub/x.md", ["*.md"])


def test_include_exclude_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "keep.md").write_text("x")
    (tmp_path / "skip.txt").write_text("x")
    (tmp_path / "photo.png").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.md").write_text("x")
    found, problems = _find(tmp_path, include=["*.md", "*.png"], exclude=[".git"])
    assert [f.rel for f in found] == ["keep.md"]
    assert [(p.status, p.reason) for p in problems] == [("skipped", "unsupported format (.png)")]


def test_symlink_loop_broken_link_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("x")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    found, problems = _find(tmp_path, tmp_path / "absent")
    assert [f.rel for f in found] == ["sub/a.md"]
    reasons = sorted(p.reason for p in problems)
    assert reasons == [
        "broken symbolic link",
        "path does not exist",
        "symbolic link loop; not followed",
    ]
    assert all(p.status == "failed" for p in problems)


def test_a_file_given_by_name_is_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "one.rst").write_text("x")
    found, _ = _find(tmp_path / "one.rst")
    assert (found[0].rel, found[0].root) == ("one.rst", tmp_path)
