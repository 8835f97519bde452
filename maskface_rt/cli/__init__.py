"""The ``maskface`` command line.

Exit codes: 0 success; 1 bad input or a failed check (one line on stderr names the file and the
problem); 2 bad usage (an invalid option); 3 some inputs were skipped; 4 nothing could run;
130 interrupted. Progress goes to stderr; ``--json`` results go to stdout.

One module per command, all registered the same way: ``maskface_rt/cli/<name>.py`` defines
``command``, a command function (registered with ``app.command(name)``, with the module's
``command_class`` when it needs its own click command class) or a ``typer.Typer`` of subcommands
(``app.add_typer(command, name=name)``), and ``<name>`` is listed in ``COMMANDS``.
Shared option types (--device, --backend, --precision, --label-order, --json) live in ``options.py``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from maskface_rt import __version__
from maskface_rt.console import stderr
from maskface_rt.errors import ExitCode, MaskfaceError

# In the order `maskface --help` lists them.
COMMANDS = ("synth", "train", "export", "build", "bench", "plugin", "generate", "serve", "info", "doctor", "eval")

app = typer.Typer(
    name="maskface",
    help="Mask-guided diverse face synthesis: train, export, generate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"maskface-rt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Mask-guided diverse face synthesis: train, export, generate, benchmark."""


def register(name: str) -> None:
    """Add the command defined by ``maskface_rt.cli.<name>`` to ``app``."""
    module = importlib.import_module(f"{__name__}.{name}")
    if isinstance(module.command, typer.Typer):
        app.add_typer(module.command, name=name)
    else:
        app.command(name, cls=getattr(module, "command_class", None))(module.command)


for _name in COMMANDS:
    register(_name)


def main() -> None:
    try:
        app()
    except MaskfaceError as e:
        stderr.print("[bold red]error:[/] ", end="")
        stderr.print(str(e), markup=False)
        sys.exit(ExitCode.FAILED)
    except KeyboardInterrupt:  # before a command runs (typer turns one inside a command into exit 130)
        stderr.print("\ninterrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except SystemExit as e:
        if e.code == ExitCode.INTERRUPTED:  # typer's exit for Ctrl-C inside a command: say so in one line
            stderr.print("\ninterrupted")
        raise
