"""maskface-rt: mask-guided diverse face synthesis, from training to fast deployment.

Importing this package (or any runtime module) never imports torch; the torch
networks and the trainer live in modules that the ``[train]`` extra enables.
"""

__version__ = "0.1.0"
