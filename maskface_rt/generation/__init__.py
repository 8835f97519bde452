"""Batch generation (``maskface generate``), in three steps both the local run and ``--ray`` use:

- ``plan``: the options and their limits, the masks found, each mask's outputs and the ones still to make;
- ``pipeline``: decode -> backend -> PNG encode + atomic write on a thread pool, and the styles of a run;
- ``report``: what a run did, and ``RunStopped`` (a run stopped part-way, with its report);

and ``distributed``, the Ray driver: the same plan, pipeline and report on a Ray cluster's actors (Ray is
imported only there, when used).
"""
