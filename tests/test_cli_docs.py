"""docs/cli.md is the CLI reference generated from the typer app; it must match the app."""

import subprocess
import sys
from pathlib import Path

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
