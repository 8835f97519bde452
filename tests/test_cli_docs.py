"""docs/cli.md is the CLI reference generated from the typer app; it must match the app."""

import subprocess
import sys
from pathlib import Path

from cli_support import cli_commands

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["typer", "maskface_rt.cli", "utils", "docs", "--name", "maskface", "--output", "docs/cli.md"]


def test_docs_cli_md_is_up_to_date(tmp_path):
    out = tmp_path / "cli.md"
    done = subprocess.run([sys.executable, "-m", *COMMAND[:-1], str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == current, (
        f"docs/cli.md is out of date; regenerate it with: {' '.join(COMMAND)}"
    )


def test_no_help_text_is_taken_for_markup_and_dropped_from_help_and_these_docs():
    """Rich reads "[auto]" as a style tag and drops it: a default in square brackets vanished from --help."""
    from rich.text import Text

    texts = [
        (" ".join(path), name, text)
        for path, command in cli_commands()
        for name, text in [("help", command.help)]
        + [(param.name, getattr(param, "help", None)) for param in command.params]
        if text
    ]
    dropped = [
        (where, name, text) for where, name, text in texts if Text.from_markup(text).plain != text.replace("\\[", "[")
    ]
    assert len(texts) > 150 and not dropped
