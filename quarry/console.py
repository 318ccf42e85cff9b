"""What every `quarry` command shares: the Rich consoles, and how a command gives up."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from quarry.settings import QuarrySettings, SettingsError, load_settings

console = Console()
err_console = Console(stderr=True)
_ESCAPES = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def print_fields(*fields: object, out: Console = console) -> None:
    """One tab-separated line written past Rich, which would wrap it at 80 columns off a
    terminal and expand the tabs: a log or CI output keeps each name whole and greppable.
    Tabs and newlines inside a field are escaped, so a field never splits the line."""
    cells = [str(f).translate(_ESCAPES) for f in fields]
    while cells and not cells[-1]:
        cells.pop()
    out.file.write("\t".join(cells) + "\n")
    out.file.flush()


def fail(message: object, code: int) -> typer.Exit:
    """Print `message` in red on stderr; `raise fail(...) from None` exits with `code`.

    Never wrapped by Rich: off a terminal a sentence stays one line a log can be searched for;
    brackets in it (`[chroma]`, a path) are text, not markup.
    """
    err_console.print(f"[red]{escape(str(message))}[/red]", soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit(**overrides: Any) -> QuarrySettings:
    """Settings with CLI flags on top (None: not given); a bad value or a broken quarry.toml
    exits 2 with the settings' own message."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise fail(exc, 2) from None
