"""One error type for everything a user can get wrong, and the CLI's exit codes."""

from __future__ import annotations

import enum
import signal
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Exit codes of the ``maskface`` command (documented in docs/exit-codes.md)."""

    OK = 0
    FAILED = 1  # bad input, a failed check, or an error that stopped the command
    USAGE = 2  # a bad option or argument (typer/click's own code)
    PARTIAL = 3  # the job ran but some inputs were skipped
    NOTHING_RAN = 4  # no input could be processed at all
    INTERRUPTED = 130  # Ctrl-C (SIGINT): the work stopped, nothing partial left behind
    TERMINATED = 143  # SIGTERM (timeout, systemd, docker): stopped and cleaned up as for Ctrl-C


class Termination:
    """SIGTERM (what timeout, systemd and docker send) turned into Ctrl-C's KeyboardInterrupt, so that one clean-up
    serves both, and remembered, so that the end tells them apart: 'terminated', exit 143, instead of
    'interrupted', exit 130. ``install`` once, in the main thread."""

    terminated = False

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGTERM, cls.on_sigterm)

    @classmethod
    def on_sigterm(cls, signum: int, frame: object) -> None:
        cls.terminated = True
        raise KeyboardInterrupt

    @classmethod
    def word(cls) -> str:
        return "terminated" if cls.terminated else "interrupted"

    @classmethod
    def exit_code(cls) -> ExitCode:
        """The exit code of a run that caught the KeyboardInterrupt and stops: 143 or 130, made to stick.

        CPython notes a KeyboardInterrupt that leaves code run from a string (``exec(source)``, which dataclasses,
        torch.onnx and others use) as one that went unhandled, even when it is caught later; under ``python -m``
        the process then ends by killing itself with SIGINT (-2), whatever code it exits with. Running any
        string clears that note (``run_eval_code_obj`` resets it first; seen on CPython 3.8 to 3.13)."""
        exec("None")  # a constant string: clears the stale note, see above
        return ExitCode.TERMINATED if cls.terminated else ExitCode.INTERRUPTED


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (a newline in a file name is
    shown as ``\\n``), so that a message about it stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class MaskfaceError(Exception):
    """A problem with a file or a value, shown to the user as one line: ``<where>: <problem>``."""

    def __init__(self, where: str | Path | None, problem: str) -> None:
        self.where = printable(str(where)) if where is not None else None
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" if self.where else self.problem


class OptionError(MaskfaceError, ValueError):
    """A value of an option that cannot work, named as the library names it (``option``: a field of the options
    dataclass, ``batch_size``); ``problem`` says what would be valid. Shown as ``<option>: <problem>``, which reads
    right from the HTTP service and Ray; the CLI shows the option's flag instead (``cli/options.flag_for``). A
    ValueError too: a bad value of a field, wherever it is caught as one."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        super().__init__(option, problem)
