"""What the commands share: the home's run lock and its `--wait`, a date typed as an option, and
the command classes that make a usage error exit 1 and show a flag without a value placeholder."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

try:  # Typer ≥ 0.29 carries its own click, whose errors are not the installed click's
    from typer._click.exceptions import UsageError
except ImportError:  # an earlier Typer, on the installed click
    from click.exceptions import UsageError  # type: ignore[assignment]
from typer.core import TyperCommand, TyperGroup, TyperOption

from bidui.errors import EXIT_ERROR, require_home
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


def checked_first(check: Callable[[dict[str, Any]], object]) -> Callable[[F], F]:
    """Call `check` with the command's arguments before the command: it raises typer.BadParameter
    (or another error the CLI reports in one line) for input the command must not start on."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)  # keeps the signature Typer reads (__signature__ too, if set)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check(kwargs)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def locked_command(create_home: bool = False,
                   check: Callable[[dict[str, Any]], object] | None = None) -> Callable[[F], F]:
    """Run the command holding the home's run lock, with a `--wait SECONDS` option added.
    `create_home`: the command may start a fresh home (ingest, run); the others need one.
    `check`: called with the command's arguments before the home is made or locked, so that bad
    input (a folder not named by a date) leaves no home behind."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        if "ctx" not in sig.parameters:  # the home is ctx.obj; fail on import, not on a night's run
            raise TypeError(f"{fn.__name__}: a locked command takes ctx: typer.Context")
        hints = typing.get_type_hints(fn, include_extras=True)

        @functools.wraps(fn)
        def wrapper(*args: Any, wait: float | None = None, **kwargs: Any) -> Any:
            ctx: typer.Context = kwargs["ctx"]  # every locked command takes it (its home is ctx.obj)
            home: Home = ctx.obj
            if check is not None:
                check(kwargs)
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
    """A date typed as an option (YYYY-MM-DD); a clear error naming the option, never a traceback.
    Every command parses its dates with this, so that a bad one reads the same everywhere."""
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value}", param_hint=option) from e


def folder_night(folder: Path, night: str | None) -> date:
    """The night of a night folder: `--date` if given, else the folder's name (inbox/YYYY-MM-DD);
    a usage error naming what to fix otherwise."""
    if night:
        return cli_date(night)
    try:
        return date.fromisoformat(folder.name)
    except ValueError as e:
        raise typer.BadParameter(f"the folder is not named by a date (YYYY-MM-DD): {folder.name}; pass --date",
                                 param_hint="'folder'") from e


def check_night_folder(kwargs: dict[str, Any]) -> None:
    """`locked_command(check=…)` for a command given a night folder and --date (ingest, run)."""
    folder_night(kwargs["folder"], kwargs.get("night"))


def _without_placeholder(params: list[Any]) -> list[Any]:
    """A flag takes no value: Typer's rich help still prints its type (`--plain <bool>`)."""
    for p in params:
        if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
            p.metavar = ""
    return params


class Command(TyperCommand):
    """A bidui command: its help shows a flag without a value placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_placeholder(super().get_params(ctx))


class Group(TyperGroup):
    """A bidui command group. Its help shows a flag without a value placeholder, and a usage error
    (a missing option, an unknown one, a bad value, a FOLDER that does not exist) exits 1, "bad
    input" (README: What a scheduler can act on), with click's message: click's own 2 is bidui's
    "a file was refused or held". The errors of the commands and groups under it pass through here."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_placeholder(super().get_params(ctx))

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as e:
            e.exit_code = EXIT_ERROR
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as e:
            e.exit_code = EXIT_ERROR
            raise


def use_bidui_classes(app: typer.Typer) -> None:
    """Make every command and group of `app` (those other modules add to it too) a Command or a
    Group; call it once every command is registered."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):  # Typer's default, not a class of the command's own
            info.cls = Command
    for group in app.registered_groups:
        if not isinstance(group.cls, type):  # not given to add_typer (Typer's default placeholder)
            group.cls = Group
        if group.typer_instance is not None:
            use_bidui_classes(group.typer_instance)


def out_file(path: Path, *suffixes: str) -> Path:
    """A file to write whose name says what it holds (an Excel workbook under x.csv would not open
    as the operator expects); a clear error naming the option otherwise."""
    if path.suffix.lower() not in suffixes:
        raise typer.BadParameter(f"write to a file ending {' or '.join(suffixes)}: {path.name}", param_hint="--out")
    return path
