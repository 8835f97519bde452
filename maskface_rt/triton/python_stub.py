"""The ``model.py`` of a ``maskface triton --platform python`` repository (copied there as it is).

Triton's python backend loads this file; all the work is in ``maskface_rt.triton.python_model``, so the Python that
runs the backend's stub must import ``maskface_rt``: install maskface-rt into Triton's container (pip install
'maskface-rt'), or start ``tritonserver`` with this environment's ``bin/`` first on ``PATH`` (the stub's embedded
Python takes its environment from the ``python3`` found there). See docs/triton.md.
"""


class TritonPythonModel:
    """Triton's python-backend entry points, handed to ``MaskfaceModel``."""

    def initialize(self, args):
        try:
            from maskface_rt.triton.python_model import MaskfaceModel
        except ImportError as e:
            import sys

            raise RuntimeError(
                f"maskface_rt cannot be imported by the python backend's Python ({sys.prefix}: {e}); pip install "
                "maskface-rt there, or start tritonserver with maskface-rt's environment's bin/ first on PATH"
            ) from None
        self.model = MaskfaceModel(args)

    def execute(self, requests):
        return self.model.execute(requests)

    def finalize(self):
        self.model.finalize()
