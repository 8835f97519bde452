"""Mask consistency: how well a parser's labels on generated faces agree with the input masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskface_rt.labels import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """int64 [C, C]: row = target class, column = predicted class, counted over all pixels."""
    index = target.astype(np.int64).ravel() * num_classes + predicted.astype(np.int64).ravel()
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Consistency:
    """Scores of one confusion matrix. Per-class values are None for classes they are undefined for."""

    pixel_accuracy: float
    mean_accuracy: float  # mean per-class accuracy over classes present in the masks
    miou: float  # mean IoU over classes present in the masks or the predictions
    class_accuracy: dict[str, float | None]
    class_iou: dict[str, float | None]
    pixels: int

    @classmethod
    def of(cls, confusion: np.ndarray) -> Consistency:
        confusion = confusion.astype(np.float64)
        tp = np.diag(confusion)
        in_target, in_pred = confusion.sum(axis=1), confusion.sum(axis=0)
        union = in_target + in_pred - tp
        accuracy = np.divide(tp, in_target, out=np.full_like(tp, np.nan), where=in_target > 0)
        iou = np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)
        names = CLASS_NAMES[: len(tp)]
        return cls(
            pixel_accuracy=float(tp.sum() / confusion.sum()),
            mean_accuracy=float(np.nanmean(accuracy)),
            miou=float(np.nanmean(iou)),
            class_accuracy=_by_name(names, accuracy),
            class_iou=_by_name(names, iou),
            pixels=int(confusion.sum()),
        )


def _by_name(names: tuple[str, ...], values: np.ndarray) -> dict[str, float | None]:
    return {name: None if np.isnan(v) else float(v) for name, v in zip(names, values)}
