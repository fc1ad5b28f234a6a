"""What the commands share: the home's run lock and its `--wait`, and a date typed as an option."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from bidui.errors import require_home
from bidui.home import Home
from bidui.runlock import DEFAULT_WAIT, configured_wait, run_lock

F = TypeVar("F", bound=Callable[..., Any])

WaitOption = Annotated[float | None, typer.Option(
    "--wait", min=0, metavar="SECONDS",
    help=f"How long to wait for another bidui run on this home to finish (default \\[run] lock_wait in "
         f"bidui.toml, else {DEFAULT_WAIT:.0f}); then exit 3.")]


def _waiting(wait: float) -> Callable[[int | None, str | None], None]:
    def notice(pid: int | None, since: str | None) -> None:
        # Only for a person at a terminal: a scheduler's log gets the one line of the outcome.
        if sys.stderr.isatty():
            print(f"waiting up to {wait:.0f} s for the bidui run in progress on this home "
                  f"(pid {pid or 'unknown'}, since {since or 'unknown'})…", file=sys.stderr, flush=True)

    return notice


def locked_command(create_home: bool = False) -> Callable[[F], F]:
    """Run the command holding the home's run lock, with a `--wait SECONDS` option added.
    `create_home`: the command may start a fresh home (ingest, run); the others need one."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        hints = typing.get_type_hints(fn, include_extras=True)

        @functools.wraps(fn)
        def wrapper(*args: Any, wait: float | None = None, **kwargs: Any) -> Any:
            ctx: typer.Context = kwargs.get("ctx") or click.get_current_context()
            home: Home = ctx.obj
            if create_home:
                home.ensure()
            else:
                require_home(home.root)
            seconds = configured_wait(home.root, wait)
            with run_lock(home.root, seconds, command=ctx.command_path, on_wait=_waiting(seconds)):
                return fn(*args, **kwargs)

        # Typer reads the parameters from the signature: the wrapped command's, plus --wait.
        extra = inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=WaitOption)
        wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**hints, "wait": WaitOption}
        return wrapper  # type: ignore[return-value]

    return decorate


def cli_date(value: str, option: str = "--date") -> date:
    """A date typed as an option (YYYY-MM-DD); a clear error naming the option, never a traceback."""
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value}", param_hint=option) from e


def out_file(path: Path, *suffixes: str) -> Path:
    """A file to write whose name says what it holds (an Excel workbook under x.csv would not open
    as the operator expects); a clear error naming the option otherwise."""
    if path.suffix.lower() not in suffixes:
        raise typer.BadParameter(f"write to a file ending {' or '.join(suffixes)}: {path.name}", param_hint="--out")
    return path
