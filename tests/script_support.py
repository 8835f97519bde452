"""The scripts of benchmarks/ (make bf16-check, gpu-check, gpu-session, demo-candidate) imported as modules, for
the tests of their parts; the tests of the whole run them as ``python benchmarks/NAME.py``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a module (imported once per process, as its siblings import each other)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))
