"""Triton Inference Server: ``maskface triton`` writes a model repository (``repository.py``) of Triton model
configurations (``config.py``, checked against Triton's own schema); the python flavour's model runs maskface's
backend inside Triton's python backend (``python_stub.py`` is its ``model.py``, ``python_model.py`` the work);
``server.py`` starts the ``tritonserver`` of the nvidia-pytriton wheel on a repository (tests, benchmarks).
Never imports torch; tritonclient and protobuf (the ``[triton]`` extra) only when a repository is written.
"""
