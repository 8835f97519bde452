"""``maskface serve``: an HTTP service with dynamic batching, and the mask editor page (the ``[serve]`` extra).

batcher (asyncio queue -> one backend call per batch, on a worker thread) -> app (FastAPI routes, limits,
metrics) -> cli (``maskface serve``, options checked before any work). The editor is static/ (no build step).
"""
