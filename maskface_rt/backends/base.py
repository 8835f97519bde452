"""The generator interface: one implementation per backend (the rows of ``registry.REGISTRY``)."""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np

from maskface_rt.config import ModelConfig


def latent_for_style(seed: int, k: int, latent_dim: int) -> np.ndarray:
    """z of style index k for ``seed``: what ``generate`` and ``serve`` feed the style encoder, public so that any
    client (a Triton client, docs/triton.md) reproduces their faces. Depends only on (seed, k), never on the mask
    or its index, the batch or the backend:
    ``np.random.default_rng(np.random.SeedSequence([seed, k])).standard_normal(latent_dim).astype(np.float32)``."""
    return np.random.default_rng(np.random.SeedSequence([seed, k])).standard_normal(latent_dim).astype(np.float32)


class GeneratorBackend(abc.ABC):
    """Labels + style codes -> uint8 faces, on one runtime.

    Arrays are numpy on the host: labels uint8 [B, H, W] in the canonical order, styles float32
    [B, style_dim], latents float32 [B, latent_dim], images uint8 RGB [B, H, W, 3].
    """

    #: Short name shown to users ("onnxruntime", "torch", ...): a class attribute, or set once by ``__init__``
    #: where one class serves several registry rows (tensorrt, tensorrt-rtx).
    name: str

    def __init__(self, config: ModelConfig, model_path: str) -> None:
        self.config = config
        self.model_path = model_path

    @property
    def description(self) -> str:
        """Backend, device and precision, e.g. 'onnxruntime CPUExecutionProvider fp32'."""
        return self.name

    @property
    def max_batch(self) -> int | None:
        """Largest batch one call takes (None: any); callers split larger work."""
        return None

    @abc.abstractmethod
    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        """G(labels, styles) as uint8 RGB images [B, H, W, 3]."""

    def bind_generator(self, labels: np.ndarray, styles: np.ndarray) -> Callable[[], None]:
        """The generator bound to one batch once: a call that runs it again on that batch, finished on return
        (bench's device time). A backend that can keep the batch and its output on the device binds them there,
        so that a call makes no host copies; this default only closes over ``generate``."""
        labels, styles = np.ascontiguousarray(labels), np.ascontiguousarray(styles)

        def run() -> None:
            self.generate(labels, styles)

        return run

    @abc.abstractmethod
    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        """Style encoder F (StarGAN v2's mapping network): latents [B, latent_dim] -> styles [B, style_dim]."""

    @abc.abstractmethod
    def encode_style(self, images: np.ndarray) -> np.ndarray:
        """Style decoder E (StarGAN v2's style encoder): uint8 RGB [B, H, W, 3] at the model's size -> styles
        [B, style_dim]."""

    def styles_for_seed(self, seed: int, count: int) -> np.ndarray:
        """The styles of indices 0..count-1 for ``seed`` (float32 [count, style_dim])."""
        z = np.stack([latent_for_style(seed, k, self.config.latent_dim) for k in range(count)])
        return self.map_latent(z)

    def close(self) -> None:
        """Free runtime resources (sessions, device memory)."""

    def __enter__(self) -> GeneratorBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
