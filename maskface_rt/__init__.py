"""maskface-rt: mask-guided diverse face synthesis, from training to fast deployment.

Importing this package (or any runtime module) never imports torch; the torch
networks and the trainer live in modules that the ``[train]`` extra enables.
"""

import os
from importlib import metadata

try:
    __version__ = metadata.version("maskface-rt")  # the one place: pyproject.toml's [project] version
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# onnxruntime (1.32 at least) records usage events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime when it is
# imported, unless this is set before its import; ORT_DISABLE_TELEMETRY=0 in the environment keeps them on.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
