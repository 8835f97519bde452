"""``maskface generate --ray``: a local run's work spread over the actors of a Ray cluster (Ray Data).

The driver (this process) checks and plans exactly as a local run does (``plan.plan_run``: existing
complete outputs are kept), then streams the planned masks, as small rows (index, name, paths; never pixels),
through ``Dataset.map_batches`` to a pool of actors. Each actor opens the backend once (``open_backend``,
from the model's path: shared storage) and computes the styles once (``pipeline.style_codes``: style k depends
only on (seed, k) or reference k, so every actor holds the same ones); for each batch of masks it plans
them again (a retried task keeps what its first try wrote) and runs ``pipeline.generate_plans``, the local
pipeline's decode -> backend -> PNG encode -> atomic write, returning one small row per mask.

Fault tolerance is Ray Data's: its actor pools default to ``max_restarts=-1`` and ``max_task_retries=-1``,
so a worker process that dies is restarted and its batch run again; atomic writes and the re-plan mean a
rerun batch leaves neither truncated nor duplicate files. Ray is imported only here, and only when used.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from maskface_rt.errors import MaskfaceError, OptionError, printable
from maskface_rt.fileio import remove_stale_temps
from maskface_rt.generation.pipeline import generate_plans, style_codes
from maskface_rt.generation.plan import GenerateOptions, MaskPlan, Planned, plan_masks, plan_run, read_references
from maskface_rt.generation.report import GenerateReport, build_report
from maskface_rt.mask_io import MaskSource
from maskface_rt.model_kind import model_kind
from maskface_rt.values import Limit, limit_problems

RAY_INSTALL = "pip install 'maskface-rt[ray]'"
#: A worker that has not reported for this long is no longer counted in the progress bar's "workers".
_ALIVE_WINDOW_S = 30.0
#: Seconds a host:port --ray-address has to accept a connection.
_CONNECT_TIMEOUT_S = 10.0
#: Images per actor task, in backend batches: enough to keep the pipeline full, small enough to spread.
_BATCHES_PER_TASK = 4

#: option field -> (CLI flag, lowest, highest)
RAY_LIMITS = {
    "workers": Limit(1, 4096),
    "cpus_per_worker": Limit(0.01, 1024, integer=False),
    "gpus_per_worker": Limit(0, 64, integer=False),
}


@dataclass
class RayOptions:
    """Where and how wide ``--ray`` runs (one field per CLI option; None: chosen from the cluster)."""

    address: str | None = None  # None: start a local instance (or join the one RAY_ADDRESS names)
    workers: int | None = None  # actor pool size; None: as many as the cluster holds
    cpus_per_worker: float = 1.0  # also each actor's backend threads (at least 1)
    gpus_per_worker: float | None = None  # None: 1 where the cluster has GPUs, else 0


@dataclass(frozen=True)
class WorkerModel:
    """What every actor opens: ``open_backend(model, backend, device=..., precision=..., threads=...)``."""

    model: str  # a path every node can read (shared storage); the driver makes it absolute
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"


@dataclass
class RayGenerateReport(GenerateReport):
    """A local run's report plus the cluster's size and the images each worker process wrote."""

    cluster: dict[str, Any] = field(default_factory=dict)  # nodes, cpus, gpus, workers, cpus/gpus_per_worker
    per_worker: dict[str, int] = field(default_factory=dict)  # "host:pid" -> images written


def ray_options_problem(ray_opts: RayOptions, opts: GenerateOptions) -> OptionError | None:
    """What is wrong with a Ray run's option values, naming the option (``ray.<field>``) and the valid range
    (None: nothing)."""
    if opts.grid:
        return OptionError(
            "grid",
            "contact sheets are not made on Ray; run the same command locally with the grid afterwards "
            "(the faces are kept, only the sheets are made)",
        )
    found = limit_problems(ray_opts, RAY_LIMITS, none_ok=True)
    return OptionError(f"ray.{found[0][0]}", found[0][1]) if found else None


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise OptionError("ray", f"a Ray run needs Ray Data ({e}): {RAY_INSTALL}") from None
    return ray


# ----------------------------------------------------------------------------- the workers


class MaskWorker:
    """One Ray actor: a backend and the styles, making the missing outputs of the masks it is given.

    Problems come back as data (``fatal``), never as exceptions: Ray would retry a failing task, and the
    driver turns the first fatal problem into the command's one-line error.
    """

    def __init__(self, model: WorkerModel, opts: GenerateOptions, threads: int) -> None:
        from maskface_rt.backends import open_backend

        self.opts = opts
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.fatal = ""
        try:
            self.backend = open_backend(
                model.model, model.backend, device=model.device, precision=model.precision, threads=threads
            )
            self.styles = style_codes(self.backend, opts, read_references(opts.references))
        except MaskfaceError as e:
            self.fatal = str(e)

    def __call__(self, batch: Any) -> Any:
        """Input: a pyarrow table of (index, name, path, parts); output: one row per mask (``_result_schema``)."""
        import pyarrow as pa  # type: ignore[import-untyped]  # Ray Data's dependency ships no types

        rows = batch.to_pylist()
        if self.fatal:
            results = [_result(row["index"], None, self.fatal) for row in rows]
        else:
            plans = plan_masks([_source(row) for row in rows], self.opts)
            fatal = ""
            try:
                generate_plans(self.backend, self.opts, self.styles, [p for p in plans if p.needs_work])
            except MaskfaceError as e:  # a full or read-only disk: no other output could be written either
                fatal = str(e)
            results = [_result(row["index"], plan, fatal) for row, plan in zip(rows, plans)]
        backend = "" if self.fatal else self.backend.description
        model = "" if self.fatal else str(self.backend.model_path)
        for result in results:
            result.update(worker=self.worker, backend=backend, model=model)
        return pa.Table.from_pylist(results, schema=_result_schema())


def _source(row: dict[str, Any]) -> MaskSource:
    return MaskSource(row["name"], Path(row["path"]), tuple(Path(p) for p in row["parts"] or ()))


def _result(index: int, plan: MaskPlan | None, fatal: str) -> dict[str, Any]:
    problem = plan.problem if plan else None
    return {
        "index": index,
        "written": list(plan.written) if plan else [],
        "raced": plan.raced if plan else 0,
        "missing": list(plan.missing) if plan else [],  # what was still missing when this worker planned it
        "problem_path": problem.path if problem else "",
        "problem": problem.reason if problem else "",
        "fatal": fatal,
    }


def _result_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("written", pa.list_(pa.int64())),
            ("raced", pa.int64()),
            ("missing", pa.list_(pa.int64())),
            ("problem_path", pa.string()),
            ("problem", pa.string()),
            ("fatal", pa.string()),
            ("worker", pa.string()),
            ("backend", pa.string()),
            ("model", pa.string()),
        ]
    )


# ----------------------------------------------------------------------------- the driver


@contextmanager
def ray_session(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Connected to Ray for the block: the instance this process already has, else ``address`` (None: the
    cluster RAY_ADDRESS names, else a new local instance, never one that happens to run on this host). Only a
    connection made here is closed here."""
    with redirect_stdout(sys.stderr):  # Ray prints notices (a worker died...) on stdout, the --json report's
        if ray.is_initialized():
            yield
            return
        _check_reachable(address)
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        try:
            # Workers' logs stay in Ray's session folder (/tmp/ray/session_latest/logs); their problems come
            # back as result rows.
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise OptionError("ray.address", f"cannot connect to Ray at {address} ({e})") from None
        try:
            yield
        finally:
            ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """A host:port address must accept a connection within seconds (Ray itself retries for minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or "://" in host or not port.isdigit():
        return  # a new local instance, auto, or ray:// (Ray Client has its own timeout)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise OptionError("ray.address", f"cannot reach a Ray cluster at {address} ({e.strerror or e})") from None


def cluster_size(ray: ModuleType) -> dict[str, Any]:
    """Alive nodes, and the cluster's CPUs and GPUs."""
    resources = ray.cluster_resources()
    return {
        "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
        "cpus": float(resources.get("CPU", 0)),
        "gpus": float(resources.get("GPU", 0)),
    }


def worker_pool(cluster: dict[str, Any], ray_opts: RayOptions) -> RayOptions:
    """``ray_opts`` with its defaults chosen from the cluster: 1 GPU per worker where it has GPUs, and as
    many workers as it holds. A worker that cannot fit on the cluster is refused with one line."""
    gpus = ray_opts.gpus_per_worker if ray_opts.gpus_per_worker is not None else (1.0 if cluster["gpus"] else 0.0)
    cpus = ray_opts.cpus_per_worker
    for option, need, have, what in (
        ("ray.cpus_per_worker", cpus, cluster["cpus"], "CPUs"),
        ("ray.gpus_per_worker", gpus, cluster["gpus"], "GPUs"),
    ):
        if need > have:
            raise OptionError(option, f"each worker needs {need:g} {what} but the Ray cluster has {have:g}")
    fits = [cluster["cpus"] / cpus] + ([cluster["gpus"] / gpus] if gpus else [])
    workers = ray_opts.workers if ray_opts.workers is not None else max(1, int(min(fits) + 1e-9))
    return replace(ray_opts, workers=workers, gpus_per_worker=gpus)


def run_generate_ray(
    mask_dir: Path,
    opts: GenerateOptions,
    model: WorkerModel,
    ray_opts: RayOptions,
    on_total: Callable[[int], None] | None = None,
    on_advance: Callable[[int], None] | None = None,
    on_workers: Callable[[int], None] | None = None,
) -> RayGenerateReport:
    """``run_generate`` on a Ray cluster: the same outputs, names, report and exit codes, plus the cluster's
    size and per-worker counts. ``on_workers(n)``: the workers that reported in the last 30 s."""
    if problem := ray_options_problem(ray_opts, opts):
        raise problem
    start = time.perf_counter()
    ray = import_ray()
    model_kind(Path(model.model))  # a missing or unknown model is refused here, before Ray starts
    model = replace(model, model=str(_absolute(Path(model.model))))
    planned = plan_run(mask_dir, opts)
    remote_opts = replace(
        opts, out=_absolute(opts.out), references=tuple(_absolute(p) for p in opts.references), grid=False
    )
    try:
        with ray_session(ray, ray_opts.address):
            cluster = cluster_size(ray)
            pool = worker_pool(cluster, ray_opts)
            cluster.update(
                workers=pool.workers, cpus_per_worker=pool.cpus_per_worker, gpus_per_worker=pool.gpus_per_worker
            )
            if on_total:
                on_total(planned.todo)
            planned.prepare_output()
            tally = _Tally(planned, on_advance, on_workers)
            if planned.todo:
                for batch in _results(ray, planned, remote_opts, model, pool):
                    tally.add(batch)
    finally:
        # After the session: a local instance's workers are stopped by then (Ctrl-C, an error), so the temp
        # files of writes they did not finish are removed; a killed worker's too.
        remove_stale_temps(planned.out)
    return build_report(
        RayGenerateReport,
        planned,
        time.perf_counter() - start,
        tally.backend or model.backend,
        tally.model or model.model,
        cluster=cluster,
        per_worker=dict(sorted(tally.per_worker.items())),
    )


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _results(
    ray: ModuleType, planned: Planned, opts: GenerateOptions, model: WorkerModel, pool: RayOptions
) -> Iterator[list[dict[str, Any]]]:
    """The workers' result rows, a batch at a time, as they finish (in any order)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is on stderr
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its own logs: /tmp/ray/session_*/logs/ray-data
    items: list[dict[str, Any]] = [
        {
            "index": i,
            "name": p.source.name,
            "path": str(_absolute(p.source.path)),
            "parts": [str(_absolute(part)) for part in p.source.parts],
        }
        for i, p in enumerate(planned.plans)
        if p.needs_work
    ]
    per_mask = max(1, len(planned.plans[items[0]["index"]].outputs))
    workers = pool.workers or 1  # worker_pool has chosen it
    masks_per_task = max(1, min(math.ceil(_BATCHES_PER_TASK * opts.batch_size / per_mask), -(-len(items) // workers)))
    dataset = ray.data.from_items(items).map_batches(
        MaskWorker,
        batch_size=masks_per_task,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool.workers),
        num_cpus=pool.cpus_per_worker,
        num_gpus=pool.gpus_per_worker,
        fn_constructor_kwargs={"model": model, "opts": opts, "threads": max(1, int(pool.cpus_per_worker))},
    )
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield batch.to_pylist()


class _Tally:
    """The driver's side of the run: results applied to its own plans, progress and per-worker counts."""

    def __init__(
        self, planned: Planned, on_advance: Callable[[int], None] | None, on_workers: Callable[[int], None] | None
    ) -> None:
        self.planned, self.on_advance, self.on_workers = planned, on_advance, on_workers
        self.per_worker: dict[str, int] = {}
        self.last_seen: dict[str, float] = {}
        self.backend = self.model = ""

    def add(self, rows: list[dict[str, Any]]) -> None:
        done = 0
        for row in rows:
            if row["fatal"]:
                raise MaskfaceError(None, row["fatal"])
            plan = self.planned.plans[row["index"]]
            plan.written = list(row["written"])
            # outputs planned here that an earlier try of this batch (a killed worker's) wrote: kept there
            kept = len(set(plan.missing) - set(row["missing"]))
            plan.raced = row["raced"] + kept
            if row["problem"]:
                plan.skip(row["problem"], self._local_path(plan, row["problem_path"]))
            self.per_worker[row["worker"]] = self.per_worker.get(row["worker"], 0) + len(plan.written)
            self.last_seen[row["worker"]] = time.monotonic()
            self.backend, self.model = row["backend"], row["model"]
            done += len(plan.missing)
        if self.on_advance and done:
            self.on_advance(done)
        if self.on_workers:
            now = time.monotonic()
            self.on_workers(sum(now - seen < _ALIVE_WINDOW_S for seen in self.last_seen.values()))

    @staticmethod
    def _local_path(plan: MaskPlan, path: str) -> str:
        """A problem with the mask itself is reported under the path the user gave, as a local run does."""
        absolute = str(_absolute(plan.source.path))
        return str(plan.source.path) if path in (absolute, printable(absolute)) else path
