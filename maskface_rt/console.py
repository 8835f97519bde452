"""Terminal output shared by the CLI modules: the stderr console, progress bars and JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr = Console(stderr=True, soft_wrap=True, highlight=False)


def progress_bar(*extra: Any) -> Progress:
    """A rich bar on stderr; tasks carry a ``rate`` field (text shown after the count)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )


def stop_progress(progress: Progress) -> None:
    """Stop a bar that may never have started (a failed check prints no empty bar)."""
    if progress.live.is_started:
        progress.stop()


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
