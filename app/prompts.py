"""Prompt templates live as files in `prompts/`; rendering them is strict.

A variable the template uses but the caller did not pass is an error, and so is a variable
the caller passed that the template never uses (usually a typo on one side).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


class PromptError(KeyError):
    pass


@cache
def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        autoescape=False,
    )


def template_variables(name: str, directory: Path = PROMPTS_DIR) -> set[str]:
    env = _environment(directory)
    source = env.loader.get_source(env, f"{name}.md")[0]  # type: ignore[union-attr]
    return jinja2.meta.find_undeclared_variables(env.parse(source))


def render(name: str, directory: Path = PROMPTS_DIR, **variables: Any) -> str:
    """Render `prompts/<name>.md` with exactly the variables it uses."""
    try:
        expected = template_variables(name, directory)
    except jinja2.TemplateNotFound:
        raise PromptError(f"no prompt {name!r}: {directory / (name + '.md')} is missing") from None
    missing, unused = expected - variables.keys(), variables.keys() - expected
    if missing or unused:
        raise PromptError(
            f"prompt {name!r} needs {sorted(expected)}; missing {sorted(missing)}, "
            f"unused {sorted(unused)}"
        )
    try:
        return _environment(directory).get_template(f"{name}.md").render(**variables).strip()
    except jinja2.UndefinedError as exc:  # e.g. a passage without `label`
        raise PromptError(f"prompt {name!r}: {exc.message}") from None
