"""Quarry as a user installs it: a wheel built from the checkout, in a fresh virtual
environment outside it, must work without the checkout (prompts, sample documents, CLI)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy  # builds a wheel and a virtual environment

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import quarry
    from quarry.app.prompts import PROMPTS_DIR, prompt_sets, render, template_variables
    from quarry.package_data import SAMPLE_DOCS

    assert Path(quarry.__file__).is_relative_to(Path(sys.prefix)), quarry.__file__
    names = [p.stem for p in PROMPTS_DIR.glob("*.md")]
    for prompt_set in [None, *prompt_sets()]:
        folder = PROMPTS_DIR / prompt_set if prompt_set else PROMPTS_DIR
        for name in names + [p.stem for p in folder.glob("*.md")]:
            needed = template_variables(name, prompt_set=prompt_set)
            # Each variable as a string or as a list of passages with every field a prompt reads.
            row = {"number": 1, "label": "a.md", "text": "x", "flagged": False}
            values = {v: [row] if v.endswith("s") else "x" for v in needed}
            assert render(name, prompt_set=prompt_set, **values), (prompt_set, name)
    print(len(sorted(SAMPLE_DOCS.glob("*.md"))), "sample documents")
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; its dependencies are this environment's, added
    as a plain path (so this environment's editable Quarry is not seen there)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-w", str(work / "dist"), "-q"],
        check=True, cwd=work,
    )  # fmt: skip
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(target) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    wheel = next((work / "dist").glob("quarry-*.whl"))
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True
    )
    return venv


def _run(venv: Path, *argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        argv, cwd=cwd, env={**environment, **env}, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_runs_without_the_checkout(installed: Path, tmp_path: Path) -> None:
    quarry = str(installed / "bin" / "quarry")
    help_text = _run(installed, quarry, "--help", cwd=tmp_path)
    assert help_text.returncode == 0, help_text.stderr
    assert "ingest" in help_text.stdout

    checked = _run(installed, str(installed / "bin" / "python"), "-c", CHECK, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-3000:]
    shipped = len(list((ROOT / "docs").glob("*.md")))
    assert f"{shipped} sample documents" in checked.stdout

    docs = next((installed / "lib").glob("python*/site-packages/quarry/sample_docs"))
    ingested = _run(
        installed,
        quarry, "ingest", str(docs), "--collection", "sample",
        cwd=tmp_path, QUARRY_DATA_DIR=str(tmp_path / "data"), QUARRY_PROFILE="cpu",
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr[-3000:]
    assert f"sample: {shipped} added" in ingested.stdout, ingested.stdout
