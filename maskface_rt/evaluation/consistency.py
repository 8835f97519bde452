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


def nearest_colour_labels(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The cheapest face parser: each pixel of ``face`` (uint8 [H, W, 3]) takes the class of ``mask``
    ([H, W]) whose mean colour in this face is nearest. It cannot tell left from right eye or brow, so its
    mIoU has a low ceiling, but it asks the parser's question without torch or training: do the mask's regions
    come out as distinct regions of the face? Used to compare backends and precisions on the same inputs."""
    pixels, flat = face.reshape(-1, 3).astype(np.float64), mask.ravel()
    present = np.unique(flat)
    means = np.stack([pixels[flat == k].mean(0) for k in present])
    return present[((pixels[:, None] - means[None]) ** 2).sum(-1).argmin(1)].reshape(mask.shape)


def colour_parser_consistency(faces: np.ndarray, masks: np.ndarray) -> Consistency:
    """Mask consistency of ``faces`` [N, H, W, 3] against ``masks`` [N, H, W] by ``nearest_colour_labels``."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for face, mask in zip(faces, masks, strict=True):
        confusion += confusion_matrix(nearest_colour_labels(face, mask), mask, NUM_CLASSES)
    return Consistency.of(confusion)
