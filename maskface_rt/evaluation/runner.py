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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskface_rt.backends import BACKENDS, PRECISIONS, GeneratorBackend, open_backend
from maskface_rt.datasets import CELEBA_MAPPING, PairedDataset, open_dataset
from maskface_rt.errors import MaskfaceError
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
            raise MaskfaceError(
                None,
                f"--compare takes BACKEND[@PRECISION]:MODEL with BACKEND one of {', '.join(BACKENDS)} and "
                f"PRECISION one of {', '.join(PRECISIONS)}, got {text!r} "
                "(e.g. onnxruntime:runs/demo/onnx-fp16 or openvino@fp32:runs/demo/onnx)",
            )
        return cls(backend, Path(model), precision or "auto")


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
    chunks = []
    for i in range(0, len(paths), inception.batch_size):
        batch = np.stack([resize_rgb(read_rgb(p), pairs.size) for p in paths[i : i + inception.batch_size]])
        chunks.append(inception(batch))
        advance(len(batch))
    features = np.concatenate(chunks)
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
        raise MaskfaceError(None, f"--styles must be at least 2 (diversity compares styles), got {options.styles}")
    if options.limit < 1 or options.batch_size < 1:
        raise MaskfaceError(None, "--limit and --batch-size must be positive")
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
            [open_backend(c.model, c.backend, device=options.device, precision=c.precision) for c in options.compare]
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
    # each None unless a selected metric needs it (inception: FID or KID)
    parser, lpips, inception = nets.get("parser"), nets.get("lpips"), nets.get("inception")
    real_features = None
    if inception is not None:
        count = len(pairs) if options.real_limit is None else min(options.real_limit, len(pairs))
        cache = FeatureCache(options.stats_cache) if options.stats_cache is not None else None
        real_features, real_info = _real_features(pairs, count, inception, cache, progress)
    k = options.styles
    styles = [b.styles_for_seed(options.seed, k) for b in (reference, *others)]
    conf_generated = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    conf_real = np.zeros_like(conf_generated)
    l1: list[float] = []
    lpips_div: list[float] = []
    features: list[list[np.ndarray]] = [[] for _ in range(1 + len(others))]
    parity = [ParityAccumulator() for _ in others]
    parity_lpips: list[list[np.ndarray]] = [[] for _ in others]
    chunk = max(1, options.batch_size // k)
    advance = progress("evaluate", result.masks)
    for start in range(0, result.masks, chunk):
        real = [pairs[i] for i in range(start, min(start + chunk, result.masks))]
        photos, labels = np.stack([r for r, _ in real]), np.stack([m for _, m in real])
        faces = _generate(reference, labels, styles[0], options.batch_size)
        flat = faces.reshape(-1, *faces.shape[2:])
        if parser is not None:
            conf_generated += confusion_matrix(parser.predict(flat), np.repeat(labels, k, axis=0))
            conf_real += confusion_matrix(parser.predict(photos), labels)
        if "diversity" in selected:
            l1.extend(mean_pairwise(faces, pixel_l1))
        if lpips is not None:
            lpips_div.extend(mean_pairwise(faces, lpips))
        if inception is not None:
            features[0].append(inception(flat))
        for j, other in enumerate(others):
            other_flat = _generate(other, labels, styles[j + 1], options.batch_size).reshape(flat.shape)
            parity[j].update(flat, other_flat)
            if lpips is not None:
                parity_lpips[j].append(lpips(flat, other_flat))
            if inception is not None and "fid" in selected:
                features[j + 1].append(inception(other_flat))
        advance(len(real))

    metrics = result.metrics
    if parser is not None:
        metrics["consistency"] = {
            "parser": parser.description,
            "generated": dataclasses.asdict(Consistency.of(conf_generated)),
            "real": dataclasses.asdict(Consistency.of(conf_real)),
        }
    if "diversity" in selected:
        metrics["diversity"] = {"pixel_l1": _mean_std(l1), "pairs_per_mask": k * (k - 1) // 2}
        real_l1 = synthetic_real_diversity(options.data, [p.name for p in pairs.pairs[: result.masks]], pairs.size, k)
        if real_l1 is not None:
            metrics["diversity"]["real_pixel_l1"] = _mean_std(real_l1)
    if lpips is not None:
        metrics["lpips"] = {"diversity": _mean_std(lpips_div), "pairs_per_mask": k * (k - 1) // 2}
    real_stats = None
    if real_features is not None:
        generated = np.concatenate(features[0])
        if "fid" in selected:
            real_stats = GaussianStats.of(real_features)
            metrics["fid"] = {
                "value": frechet_distance(GaussianStats.of(generated), real_stats),
                "generated_images": len(generated),
                **real_info,
            }
        if "kid" in selected:
            kid = kernel_inception_distance(
                generated,
                real_features,
                subsets=options.kid_subsets,
                subset_size=options.kid_subset_size,
                seed=options.seed,
            )
            metrics["kid"] = {**dataclasses.asdict(kid), "generated_images": len(generated), **real_info}
    for j, (other, comparison) in enumerate(zip(others, options.compare)):
        entry: dict[str, Any] = {
            "backend": other.description,
            "model": str(comparison.model),
            **dataclasses.asdict(parity[j].result()),
        }
        if lpips is not None:
            entry["lpips"] = _mean_std(np.concatenate(parity_lpips[j]))
        if real_stats is not None:
            fid = frechet_distance(GaussianStats.of(np.concatenate(features[j + 1])), real_stats)
            entry["fid"] = fid
            entry["fid_change"] = fid - metrics["fid"]["value"]
        result.parity.append(entry)
