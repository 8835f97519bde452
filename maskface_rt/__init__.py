"""maskface-rt: mask-guided diverse face synthesis, from training to fast deployment.

Importing this package (or any runtime module) never imports torch; the torch
networks and the trainer live in modules that the ``[train]`` extra enables.
"""

import os

__version__ = "0.1.0"

# onnxruntime (1.32 at least) records usage events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime when it is
# imported, unless this is set before its import; ORT_DISABLE_TELEMETRY=0 in the environment keeps them on.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
