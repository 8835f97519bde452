"""``maskface`` run in a fresh interpreter, for the tests that check what a user at a shell sees."""

from __future__ import annotations

import os
import subprocess
import sys

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
