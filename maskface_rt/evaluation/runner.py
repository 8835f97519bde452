"""``maskface eval``: one pass over held-out masks that feeds every selected metric.

For each chunk of masks the reference backend makes the faces of styles 0..K-1 (``styles_for_seed``);
those faces go to the parser (consistency), the pairwise distances (diversity), Inception (FID/KID),
and are compared with the faces every ``--compare`` backend makes from the same masks and seeds
(parity). Only running totals and features are kept, so memory does not grow with the image count.

Metrics whose weights are missing are skipped with the reason, unless they were asked for by name
(``metrics``), in which case the missing file is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskface_rt.backends import BACKENDS, PRECISIONS, GeneratorBackend, open_backend
from maskface_rt.datasets import CELEBA_MAPPING, PairedDataset, open_dataset
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.evaluation.consistency import Consistency, confusion_matrix
from maskface_rt.evaluation.diversity import mean_pairwise, pixel_l1, synthetic_real_diversity
from maskface_rt.evaluation.fid import (
    FeatureCache,
    GaussianStats,
    frechet_distance,
    kernel_inception_distance,
    real_set_key,
)
from maskface_rt.evaluation.weights import WeightStore
from maskface_rt.fileio import json_safe
from maskface_rt.image_io import read_rgb, resize_rgb
from maskface_rt.labels import NUM_CLASSES
from maskface_rt.parity import ParityAccumulator

if TYPE_CHECKING:
    import torch

    from maskface_rt.evaluation.inception import InceptionFeatures

METRICS = ("consistency", "diversity", "lpips", "fid", "kid", "parity")
#: ``--parser`` value that selects BiSeNet from --weights-dir.
BISENET = "bisenet"
#: Weight files each metric needs (consistency: only with BiSeNet, see _needs).
NEEDS: dict[str, tuple[str, ...]] = {"lpips": ("alexnet", "lpips-alex"), "fid": ("inception",), "kid": ("inception",)}

#: progress(stage, total) -> advance(n): how the runner reports progress.
Progress = Callable[[str, int], Callable[[int], None]]


def _no_progress(stage: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@dataclass(frozen=True)
class Comparison:
    """A ``--compare BACKEND[@PRECISION]:MODEL`` entry: the same masks and seeds through another backend, at
    ``precision`` where that backend takes one (``openvino@fp32:MODEL``; auto: the backend's own choice)."""

    backend: str
    model: Path
    precision: str = "auto"

    @classmethod
    def parse(cls, text: str) -> Comparison:
        head, sep, model = text.partition(":")
        backend, at, precision = head.partition("@")
        if not sep or not model or backend not in BACKENDS or (at and precision not in PRECISIONS):
            raise OptionError(
                "compare",
                f"takes BACKEND[@PRECISION]:MODEL with BACKEND one of {', '.join(BACKENDS)} and "
                f"PRECISION one of {', '.join(PRECISIONS)}, got {text!r} "
                "(e.g. onnxruntime:runs/demo/onnx-fp16 or openvino@fp32:runs/demo/onnx)",
            )
        return cls(backend, Path(model), precision or "auto")


def _open_comparison(comparison: Comparison, device: str) -> GeneratorBackend:
    """The backend of a --compare entry; a precision it cannot run is that entry's problem, not --precision's."""
    try:
        return open_backend(comparison.model, comparison.backend, device=device, precision=comparison.precision)
    except OptionError as e:
        if e.option != "precision":
            raise
        raise OptionError("compare", f"{comparison.backend}@{comparison.precision}: {e.problem}") from None


@dataclass
class EvalOptions:
    """What ``maskface eval`` measures, on which data (one field per CLI option)."""

    data: Path
    metrics: tuple[str, ...] | None = None  # None: every metric that can run here
    limit: int = 100  # masks, the first ones of the held-out split
    styles: int = 10
    seed: int = 0
    batch_size: int = 8
    split: str = "auto"  # auto: CelebAMask-HQ's test split where known, else everything
    label_order: str = "celebamask"
    real_limit: int | None = None  # real images for FID/KID (None: the whole split)
    parser: str | None = None  # a train-parser file, 'bisenet', or None (BiSeNet when its weights are there)
    compare: tuple[Comparison, ...] = ()
    stats_cache: Path | None = None  # None: no caching of real-set features
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    device: str = "auto"


@dataclass
class EvalResult:
    """Everything ``maskface eval`` measured (``to_json`` for --json, ``report.markdown`` for the report)."""

    model: str
    backend: str
    data: str
    split: str
    img_size: int
    masks: int
    styles: int
    seed: int
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # key -> file, of the networks used
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return json_safe(
            {
                "model": self.model,
                "backend": self.backend,
                "data": self.data,
                "split": self.split,
                "img_size": self.img_size,
                "masks": self.masks,
                "styles": self.styles,
                "images": self.masks * self.styles,
                "seed": self.seed,
                "metrics": self.metrics,
                "parity": self.parity,
                "skipped": self.skipped,
                "weights": self.weights,
                "seconds": self.seconds,
            }
        )


def eval_split(data: Path, split: str) -> str:
    """'auto': CelebAMask-HQ's official test split where its mapping file says it, else everything."""
    if split != "auto":
        return split
    return "test" if (Path(data) / CELEBA_MAPPING).is_file() else "all"


def _needs(metric: str, options: EvalOptions) -> tuple[str, ...]:
    """Registry keys of the weight files ``metric`` needs."""
    if metric == "consistency":
        return ("bisenet",) if options.parser in (None, BISENET) else ()
    return NEEDS.get(metric, ())


def plan_metrics(options: EvalOptions, store: WeightStore) -> tuple[list[str], dict[str, str]]:
    """(metrics to run, {skipped metric: reason}); a metric asked for by name that cannot run is an error."""
    explicit = options.metrics is not None
    wanted = METRICS if options.metrics is None else options.metrics
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown:
        raise MaskfaceError(None, f"unknown metric {unknown[0]!r}; valid: {', '.join(METRICS)}")
    selected, skipped = [], {}
    for metric in METRICS:
        if metric not in wanted:
            continue
        missing = [key for key in _needs(metric, options) if not store.available(key)]
        if metric == "parity" and not options.compare:
            if explicit:
                raise MaskfaceError(None, "metric parity needs at least one --compare BACKEND:MODEL")
            skipped[metric] = "no --compare BACKEND:MODEL given"
        elif missing and explicit:
            raise store.missing_error(missing[0])
        elif missing:
            reason = str(store.missing_error(missing[0]))
            if metric == "consistency":
                reason = f"no parser: pass --parser FILE (made by 'maskface eval train-parser') or {reason}"
            skipped[metric] = reason
        else:
            selected.append(metric)
    return selected, skipped


def _generate(backend: GeneratorBackend, labels: np.ndarray, styles: np.ndarray, batch_size: int) -> np.ndarray:
    """Faces of every mask x every style: uint8 [M, K, H, W, 3]; a job never depends on its batch."""
    jobs_labels = np.repeat(labels, len(styles), axis=0)
    jobs_styles = np.tile(styles, (len(labels), 1))
    step = min(batch_size, backend.max_batch or batch_size)
    faces = np.concatenate(
        [
            backend.generate(jobs_labels[i : i + step], jobs_styles[i : i + step])
            for i in range(0, len(jobs_labels), step)
        ]
    )
    return faces.reshape(len(labels), len(styles), *faces.shape[1:])


def _real_features(
    pairs: PairedDataset, count: int, inception: InceptionFeatures, cache: FeatureCache | None, progress: Progress
) -> tuple[np.ndarray, dict[str, Any]]:
    """Inception features of the first ``count`` real photos of ``pairs``, from the cache when it has them."""
    paths = [pair.image for pair in pairs.pairs[:count]]
    key = real_set_key(paths, pairs.size, inception.weights_sha256)
    info: dict[str, Any] = {"real_images": len(paths), "cache": None, "cache_hit": False}
    if cache is not None:
        info["cache"] = str(cache.path(key))
        cached = cache.load(key)
        if cached is not None:
            info["cache_hit"] = True
            return cached, info
    advance = progress("real images", len(paths))
    batches: list[np.ndarray] = []
    for i in range(0, len(paths), inception.batch_size):
        batch = np.stack([resize_rgb(read_rgb(p), pairs.size) for p in paths[i : i + inception.batch_size]])
        batches.append(inception(batch))
        advance(len(batch))
    features = np.concatenate(batches)
    if cache is not None:
        cache.save(key, features)
    return features, info


def _mean_std(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def evaluate(
    model: str | Path,
    options: EvalOptions,
    *,
    backend: str = "auto",
    precision: str = "auto",
    store: WeightStore | None = None,
    progress: Progress = _no_progress,
) -> EvalResult:
    """Run the selected metrics on ``model`` (through ``backend`` at ``precision``) and the data set of ``options``."""
    from maskface_rt.devices import resolve_device

    t0 = time.perf_counter()
    store = store or WeightStore()
    if options.styles < 2:
        raise OptionError("styles", f"must be at least 2 (diversity compares styles), got {options.styles}")
    for option in ("limit", "batch_size"):
        if getattr(options, option) < 1:
            raise OptionError(option, f"must be positive, got {getattr(options, option)}")
    selected, skipped = plan_metrics(options, store)
    device = resolve_device(options.device)
    with open_backend(model, backend, device=options.device, precision=precision) as reference:
        size = reference.config.img_size
        split = eval_split(options.data, options.split)
        pairs = open_dataset(options.data, size=size, split=split, label_order=options.label_order)
        result = EvalResult(
            model=str(model),
            backend=reference.description,
            data=str(options.data),
            split=split,
            img_size=size,
            masks=min(options.limit, len(pairs)),
            styles=options.styles,
            seed=options.seed,
            skipped=skipped,
        )
        nets = _open_networks(selected, options, store, device, result)
        others = (
            [_open_comparison(comparison, options.device) for comparison in options.compare]
            if "parity" in selected
            else []
        )
        try:
            for other, comparison in zip(others, options.compare):
                if other.config.img_size != size:
                    raise MaskfaceError(
                        comparison.model,
                        f"makes {other.config.img_size} px faces, the reference "
                        f"makes {size} px: parity needs the same model",
                    )
            _run(reference, others, pairs, options, selected, nets, result, progress)
        finally:
            for other in others:
                other.close()
    result.seconds = time.perf_counter() - t0
    return result


def _open_networks(
    selected: list[str], options: EvalOptions, store: WeightStore, device: torch.device, result: EvalResult
) -> dict[str, Any]:
    """The metric networks the selection needs, loaded from verified files."""
    nets: dict[str, Any] = {}
    if "consistency" in selected:
        from maskface_rt.evaluation.bisenet import BiSeNetParser
        from maskface_rt.evaluation.unet_parser import TrainedParser

        if options.parser in (None, BISENET):
            nets["parser"] = BiSeNetParser(store, device)
        else:
            nets["parser"] = TrainedParser(options.parser, device)
    if "lpips" in selected:
        from maskface_rt.evaluation.lpips import LPIPS

        nets["lpips"] = LPIPS(store, device)
    if "fid" in selected or "kid" in selected:
        from maskface_rt.evaluation.inception import InceptionFeatures

        nets["inception"] = InceptionFeatures(store, device, batch_size=options.batch_size)
    used = sorted({key for metric in selected for key in _needs(metric, options)})
    result.weights = {key: str(store.path(key)) for key in used}
    return nets


def _run(
    reference: GeneratorBackend,
    others: list[GeneratorBackend],
    pairs: PairedDataset,
    options: EvalOptions,
    selected: list[str],
    nets: dict[str, Any],
    result: EvalResult,
    progress: Progress,
) -> None:
    real = _RealSet.of(pairs, options, selected, nets.get("inception"), progress)
    totals = _Totals(selected, nets, options.styles, len(others))
    k = options.styles
    styles = [b.styles_for_seed(options.seed, k) for b in (reference, *others)]
    chunk = max(1, options.batch_size // k)
    advance = progress("evaluate", result.masks)
    for start in range(0, result.masks, chunk):
        photos, labels = _masks(pairs, start, min(start + chunk, result.masks))
        flat = totals.add_reference(_generate(reference, labels, styles[0], options.batch_size), photos, labels)
        for j, other in enumerate(others):
            totals.add_comparison(j, flat, _generate(other, labels, styles[j + 1], options.batch_size))
        advance(len(labels))
    totals.fill_metrics(result, pairs, options, real)
    totals.fill_parity(result, others, options.compare, real)


def _masks(pairs: PairedDataset, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The real photos and the masks of pairs start..stop-1, stacked."""
    real = [pairs[i] for i in range(start, stop)]
    return np.stack([r for r, _ in real]), np.stack([m for _, m in real])


@dataclass
class _RealSet:
    """Inception features of the real photos FID and KID compare against (none when neither runs)."""

    features: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # real_images, cache, cache_hit

    @classmethod
    def of(
        cls,
        pairs: PairedDataset,
        options: EvalOptions,
        selected: list[str],
        inception: InceptionFeatures | None,
        progress: Progress,
    ) -> _RealSet:
        if "fid" not in selected and "kid" not in selected:
            return cls()
        assert inception is not None, "FID and KID open the Inception network"
        count = len(pairs) if options.real_limit is None else min(options.real_limit, len(pairs))
        cache = FeatureCache(options.stats_cache) if options.stats_cache is not None else None
        return cls(*_real_features(pairs, count, inception, cache, progress))

    @functools.cached_property
    def stats(self) -> GaussianStats:
        """Their mean and covariance (FID's), computed once."""
        return GaussianStats.of(self.real_features)

    @property
    def real_features(self) -> np.ndarray:
        """The features (always computed when FID or KID runs)."""
        assert self.features is not None, "FID and KID compute the real photos' features"
        return self.features


class _Totals:
    """What one pass keeps of each chunk of faces: confusion matrices, distances, Inception features and parity
    sums, for the reference backend and each --compare one; never the faces themselves."""

    def __init__(self, selected: list[str], nets: dict[str, Any], styles: int, comparisons: int) -> None:
        self.parser, self.lpips = nets.get("parser"), nets.get("lpips")
        self.inception: InceptionFeatures | None = nets.get("inception")
        self.diversity, self.fid, self.kid = "diversity" in selected, "fid" in selected, "kid" in selected
        self.styles = styles
        self.conf_generated = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.conf_real = np.zeros_like(self.conf_generated)
        self.l1: list[float] = []
        self.lpips_div: list[float] = []
        self.features: list[list[np.ndarray]] = [[] for _ in range(1 + comparisons)]  # [0]: the reference's
        self.parity = [ParityAccumulator() for _ in range(comparisons)]
        self.parity_lpips: list[list[np.ndarray]] = [[] for _ in range(comparisons)]

    def add_reference(self, faces: np.ndarray, photos: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The reference's faces [M, K, H, W, 3] of ``labels``; returns them as one batch [M*K, H, W, 3]."""
        flat = faces.reshape(-1, *faces.shape[2:])
        if self.parser is not None:
            self.conf_generated += confusion_matrix(self.parser.predict(flat), np.repeat(labels, self.styles, axis=0))
            self.conf_real += confusion_matrix(self.parser.predict(photos), labels)
        if self.diversity:
            self.l1.extend(mean_pairwise(faces, pixel_l1))
        if self.lpips is not None:
            self.lpips_div.extend(mean_pairwise(faces, self.lpips))
        if self.fid or self.kid:
            self.features[0].append(self._inception(flat))
        return flat

    def add_comparison(self, j: int, flat: np.ndarray, faces: np.ndarray) -> None:
        """--compare backend j's faces of the same masks and styles as the reference's ``flat`` batch."""
        other_flat = faces.reshape(flat.shape)
        self.parity[j].update(flat, other_flat)
        if self.lpips is not None:
            self.parity_lpips[j].append(self.lpips(flat, other_flat))
        if self.fid:
            self.features[j + 1].append(self._inception(other_flat))

    def _inception(self, images: np.ndarray) -> np.ndarray:
        """Inception features of ``images`` (for FID and KID, which open the network)."""
        assert self.inception is not None, "FID and KID open the Inception network"
        return self.inception(images)

    def fill_metrics(self, result: EvalResult, pairs: PairedDataset, options: EvalOptions, real: _RealSet) -> None:
        """The reference backend's metrics, into ``result.metrics``."""
        metrics, k = result.metrics, self.styles
        if self.parser is not None:
            metrics["consistency"] = {
                "parser": self.parser.description,
                "generated": dataclasses.asdict(Consistency.of(self.conf_generated)),
                "real": dataclasses.asdict(Consistency.of(self.conf_real)),
            }
        if self.diversity:
            metrics["diversity"] = {"pixel_l1": _mean_std(self.l1), "pairs_per_mask": k * (k - 1) // 2}
            names = [p.name for p in pairs.pairs[: result.masks]]
            real_l1 = synthetic_real_diversity(options.data, names, pairs.size, k)
            if real_l1 is not None:
                metrics["diversity"]["real_pixel_l1"] = _mean_std(real_l1)
        if self.lpips is not None:
            metrics["lpips"] = {"diversity": _mean_std(self.lpips_div), "pairs_per_mask": k * (k - 1) // 2}
        if self.fid or self.kid:
            self._fill_inception_metrics(metrics, options, real)

    def _fill_inception_metrics(self, metrics: dict[str, Any], options: EvalOptions, real: _RealSet) -> None:
        generated = np.concatenate(self.features[0])
        if self.fid:
            metrics["fid"] = {
                "value": frechet_distance(GaussianStats.of(generated), real.stats),
                "generated_images": len(generated),
                **real.info,
            }
        if self.kid:
            kid = kernel_inception_distance(
                generated,
                real.real_features,
                subsets=options.kid_subsets,
                subset_size=options.kid_subset_size,
                seed=options.seed,
            )
            metrics["kid"] = {**dataclasses.asdict(kid), "generated_images": len(generated), **real.info}

    def fill_parity(
        self, result: EvalResult, others: list[GeneratorBackend], comparisons: Sequence[Comparison], real: _RealSet
    ) -> None:
        """One ``result.parity`` entry per --compare backend."""
        for j, (other, comparison) in enumerate(zip(others, comparisons)):
            entry: dict[str, Any] = {
                "backend": other.description,
                "model": str(comparison.model),
                **dataclasses.asdict(self.parity[j].result()),
            }
            if self.lpips is not None:
                entry["lpips"] = _mean_std(np.concatenate(self.parity_lpips[j]))
            if self.fid:
                fid = frechet_distance(GaussianStats.of(np.concatenate(self.features[j + 1])), real.stats)
                entry["fid"] = fid
                entry["fid_change"] = fid - result.metrics["fid"]["value"]
            result.parity.append(entry)
