"""``maskface`` run as a user at a shell runs it: in a fresh interpreter (``maskface``), or, where a fresh process
adds nothing the test checks, through the same entry point in this one (``maskface_here``, a second or more
cheaper a call: no interpreter start, no imports)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, TextIO
from unittest import mock

#: Runs the CLI as ``python -m maskface_rt`` does (same program name in usage lines), after the prelude.
_RUN_CLI = "import runpy\nrunpy.run_module('maskface_rt', run_name='__main__', alter_sys=True)\n"


def unimportable(*modules: str) -> str:
    """A prelude after which ``import MODULE`` raises ImportError, as on a machine without it."""
    return "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)


def maskface(
    *args: str, prelude: str = "", env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m maskface_rt ARGS`` with NO_COLOR set (plus ``env``) and its output captured as text;
    ``prelude``: Python run first in that process (``unimportable(...)``, a monkeypatch)."""
    command = [sys.executable, "-c", prelude + _RUN_CLI] if prelude else [sys.executable, "-m", "maskface_rt"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=timeout,
    )


def maskface_here(
    *args: str, env: dict[str, str] | None = None, stdout: TextIO | None = None
) -> subprocess.CompletedProcess:
    """``maskface ARGS`` through the CLI's own entry point (``maskface_rt.cli.main``: its exit codes, one-line
    errors and usage errors) in this process, with NO_COLOR set (plus ``env``) and stdout (unless ``stdout`` is
    given: then the result's stdout is "") and stderr captured. What main() installs for the process (the SIGTERM
    handler, sys.unraisablehook) is put back after. Use ``maskface`` for what only a fresh process shows: signals,
    imports, the environment at start-up, what the interpreter does at exit."""
    from maskface_rt import cli

    err, captured = io.StringIO(), io.StringIO()
    out = stdout if stdout is not None else captured
    handler, hook = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    code: int = 0
    with (
        mock.patch.dict(os.environ, {"NO_COLOR": "1", **(env or {})}),
        mock.patch.object(sys, "argv", ["maskface", *args]),
        mock.patch.object(sys, "stdout", out),
        mock.patch.object(sys, "stderr", err),
    ):
        try:
            cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            signal.signal(signal.SIGTERM, handler)
            sys.unraisablehook = hook
            with contextlib.suppress(AttributeError):
                sys.stdout.flush()
    return subprocess.CompletedProcess(["maskface", *args], code, captured.getvalue(), err.getvalue())


def cli_commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) of every command of ``maskface``, groups and subcommands included: ``("maskface",
    "eval", "run")``."""
    import typer.main

    from maskface_rt.cli import app

    todo = [(("maskface",), typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        yield path, command
        todo += [((*path, name), sub) for name, sub in getattr(command, "commands", {}).items()]
