"""What every `quarry` command shares: the Rich consoles, and how a command gives up."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from quarry.settings import QuarrySettings, SettingsError, load_settings

console = Console()
err_console = Console(stderr=True)


def fail(message: object, code: int) -> typer.Exit:
    """Print `message` in red on stderr; `raise fail(...) from None` exits with `code`."""
    err_console.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def settings_or_exit(**overrides: Any) -> QuarrySettings:
    """Settings with CLI flags on top (None: not given); a bad value or a broken quarry.toml
    exits 2 with the settings' own message."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise fail(exc, 2) from None
