"""The package's import graph (tools/import_graph.py): no circle, and no module takes another's private names."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "import_graph.py"


def _tool(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_package_has_no_import_circle_and_no_module_takes_another_modules_private_names():
    done = _tool("--json")
    figures = json.loads(done.stdout)
    assert (figures["circles"], figures["private_imports"]) == ([], []) and done.returncode == 0, done.stdout
    assert figures["modules"] > 90 and figures["imports"] > 300  # it read the whole package


def test_the_graph_tool_finds_a_circle_and_a_private_import_where_there_are_some(tmp_path):
    package = tmp_path / "maskface_rt"
    (package / "backends").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "backends" / "__init__.py").write_text("")
    (package / "backends" / "table.py").write_text("def f():\n    from maskface_rt.backends.probe import _ask\n")
    (package / "backends" / "probe.py").write_text("from . import table\n_ask = 1\n")
    (package / "values.py").write_text("from maskface_rt import __version__\n")  # a dunder name is public
    code = (
        f"import sys; sys.path.insert(0, {str(TOOL.parent)!r}); import import_graph as g; from pathlib import Path; "
        f"found = g.modules(Path({str(tmp_path)!r})); print(g.circles(g.edges(found))); print(g.private_imports(found))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    circles, private = done.stdout.splitlines()
    assert circles == "[['maskface_rt.backends.probe', 'maskface_rt.backends.table']]", done.stderr
    assert private == "['maskface_rt.backends.table: from maskface_rt.backends.probe import _ask']"
