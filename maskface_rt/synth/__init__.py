"""Procedural synthetic faces and their CelebAMask-HQ label maps, for training without real data.

Pair ``i`` of the set with seed ``K`` is drawn from ``default_rng(SeedSequence([K, i]))``
alone: first its geometry (face oval, features, hair, accessories, body), then
its appearance (colours, lighting, patterns), so either varies without the other.
Shapes are tested in normalised image coordinates, painted back to front; the
label map samples them at pixel centres, the RGB image at twice the resolution
(shaded class by class from that finer label map, then box-filtered down).
"""

from maskface_rt.synth.dataset import (
    GENERATOR_VERSION,
    MAX_SIZE,
    MIN_SIZE,
    SynthSummary,
    render_looks,
    render_pair,
    write_dataset,
)

__all__ = ["GENERATOR_VERSION", "MAX_SIZE", "MIN_SIZE", "SynthSummary", "render_looks", "render_pair", "write_dataset"]
