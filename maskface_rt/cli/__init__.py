"""The ``maskface`` command line.

Exit codes: 0 success; 1 bad input or a failed check (one line on stderr names the file and the
problem); 2 bad usage (an invalid option); 3 some inputs were skipped; 4 nothing could run;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM, cleaned up the same way). Progress goes to stderr;
``--json`` results go to stdout.

One module per command, all registered the same way: ``maskface_rt/cli/<name>.py`` defines
``command``, a command function (registered with ``app.command(name)``, with the module's
``command_class`` when it needs its own click command class) or a ``typer.Typer`` of subcommands
(``app.add_typer(command, name=name)``), and ``<name>`` is listed in ``COMMANDS``.
Shared option types (--device, --backend, --precision, --label-order, --json) live in ``options.py``.
"""

from __future__ import annotations

import _thread
import errno
import importlib
import os
import sys
import threading
from typing import Annotated, NoReturn

import typer

from maskface_rt import __version__
from maskface_rt.console import stderr
from maskface_rt.errors import ExitCode, MaskfaceError, OptionError, Termination

# In the order `maskface --help` lists them.
COMMANDS = (
    "synth",
    "train",
    "export",
    "build",
    "bench",
    "plugin",
    "generate",
    "serve",
    "triton",
    "info",
    "doctor",
    "eval",
)

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


class _Signals:
    """Ctrl-C, and SIGTERM made one (errors.Termination): the same clean-up, and the end that tells them apart."""

    @staticmethod
    def on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
        """A KeyboardInterrupt (Ctrl-C's, or SIGTERM's) that landed in a finalizer or a weakref callback is
        ignored by Python, and the command would run on: raise it again in the main thread's next step."""
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            # Shortly, from another thread: raised now, in the main thread, it would land in this hook (ignored
            # too); one landing in a finalizer again comes back here and is raised again.
            timer = threading.Timer(0.05, _thread.interrupt_main)
            timer.daemon = True
            timer.start()
            return
        sys.__unraisablehook__(unraisable)

    @staticmethod
    def stopped() -> NoReturn:
        """The one line and the exit code of a command stopped by Ctrl-C or SIGTERM."""
        stderr.print(f"\n{Termination.word()}")
        sys.exit(Termination.exit_code())


#: A write that failed for want of room or a device (a full disk, /dev/full): the output is lost, not a bug.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


def _error(message: str) -> NoReturn:
    stderr.print("[bold red]error:[/] ", end="")
    stderr.print(message, markup=False)
    sys.exit(ExitCode.FAILED)


def _cannot_write(error: OSError) -> NoReturn:
    """One line for output that could not be written, or the error itself when it is not about room."""
    if error.errno not in _WRITE_ERRORS:
        raise error
    sys.stdout = open(os.devnull, "w")  # what could not be written is dropped: no second failure at exit
    _error(f"{error.filename or 'stdout'}: cannot write ({error.strerror})")


def _flush_stdout() -> None:
    """Push what is buffered for stdout now, where a failure can still be one line (at exit, it is a traceback)."""
    try:
        sys.stdout.flush()
    except OSError as e:
        _cannot_write(e)


def main() -> None:
    Termination.install()  # maskface serve's uvicorn sets its own while it runs
    sys.unraisablehook = _Signals.on_unraisable
    try:
        app()
    except OptionError as e:  # an option found wrong once work began: named by its flag, exit 1
        from maskface_rt.cli.options import flag_for

        _error(f"{flag_for(e.option)}: {e.problem}")
    except MaskfaceError as e:
        _error(str(e))
    except KeyboardInterrupt:  # before a command runs (typer turns one inside a command into exit 130)
        _Signals.stopped()
    except OSError as e:  # typer re-raises a failed write (a broken pipe it ends itself, exit 1)
        _cannot_write(e)
    except SystemExit as e:
        if e.code == ExitCode.INTERRUPTED:  # typer's exit for Ctrl-C (or SIGTERM) inside a command
            _Signals.stopped()
        _flush_stdout()  # a --json report of a run that exits 0, 3 or 4 fails here, in one line, if it must
        raise
