"""Prompt templates live as files in `prompts/`; rendering them is strict.

A prompt set is a folder of `prompts/` written for one size of model (`small` for the cpu
profile's SmolLM2-135M, `large` for Llama-3-8B): a prompt is looked up in the set first,
then at the top of `prompts/`, where the prompts every model shares live.

A variable the template uses but the caller did not pass is an error, and so is a variable
the caller passed that the template never uses (usually a typo on one side).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from quarry.package_data import PROMPTS_DIR


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


def prompt_sets(directory: Path = PROMPTS_DIR) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def _template_name(name: str, prompt_set: str | None, directory: Path) -> str:
    if prompt_set is not None:
        if not (directory / prompt_set).is_dir():
            raise PromptError(
                f"no prompt set {prompt_set!r} (chat.prompt_set): {directory} has "
                f"{', '.join(prompt_sets(directory)) or 'none'}"
            )
        if (directory / prompt_set / f"{name}.md").is_file():
            return f"{prompt_set}/{name}.md"
    return f"{name}.md"


def template_variables(
    name: str, directory: Path = PROMPTS_DIR, prompt_set: str | None = None
) -> set[str]:
    env = _environment(directory)
    template = _template_name(name, prompt_set, directory)
    source = env.loader.get_source(env, template)[0]  # type: ignore[union-attr]
    return jinja2.meta.find_undeclared_variables(env.parse(source))


def render(
    name: str, directory: Path = PROMPTS_DIR, prompt_set: str | None = None, **variables: Any
) -> str:
    """Render `prompts/<prompt_set>/<name>.md` (or `prompts/<name>.md`) with exactly the
    variables it uses."""
    try:
        expected = template_variables(name, directory, prompt_set)
    except jinja2.TemplateNotFound:
        raise PromptError(f"no prompt {name!r}: {directory / (name + '.md')} is missing") from None
    missing, unused = expected - variables.keys(), variables.keys() - expected
    if missing or unused:
        raise PromptError(
            f"prompt {name!r} needs {sorted(expected)}; missing {sorted(missing)}, "
            f"unused {sorted(unused)}"
        )
    try:
        template = _environment(directory).get_template(_template_name(name, prompt_set, directory))
        return template.render(**variables).strip()
    except jinja2.UndefinedError as exc:  # e.g. a passage without `label`
        raise PromptError(f"prompt {name!r}: {exc.message}") from None
