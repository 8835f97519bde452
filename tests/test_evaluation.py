"""Evaluation metrics on small random networks and synthetic data: weights, FID/KID, LPIPS, parsers, parity."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from maskface_rt.datasets import open_dataset  # noqa: E402
from maskface_rt.errors import MaskfaceError  # noqa: E402
from maskface_rt.evaluation.consistency import Consistency, colour_parser_consistency, confusion_matrix  # noqa: E402
from maskface_rt.evaluation.diversity import mean_pairwise, pixel_l1  # noqa: E402
from maskface_rt.evaluation.fid import (
    FeatureCache,
    GaussianStats,
    frechet_distance,
    kernel_inception_distance,
    real_set_key,  # noqa: E402
)
from maskface_rt.evaluation.weights import REGISTRY, WeightStore, read_manifest  # noqa: E402
from maskface_rt.labels import CLASS_NAMES, FACEPARSING_TO_CELEBAMASK, NUM_CLASSES  # noqa: E402
from maskface_rt.parity import ParityAccumulator  # noqa: E402
from maskface_rt.synth import render_pair  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def store(eval_weights):
    folder, manifest = eval_weights
    return WeightStore(folder, read_manifest(manifest))


@pytest.fixture(scope="module")
def photos(synth64):
    pairs = open_dataset(synth64, size=64)
    return np.stack([pairs[i][0] for i in range(12)]), np.stack([pairs[i][1] for i in range(12)])


def _noisy(images: np.ndarray, sigma: float) -> np.ndarray:
    noise = np.random.default_rng(1).normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- weights


def test_registry_names_the_published_files_with_their_hash_prefixes():
    for spec in REGISTRY.values():
        assert len(spec.sha256) == 64 and spec.url.startswith("https://")
    assert REGISTRY["inception"].sha256.startswith("6726825d") and "6726825d" in REGISTRY["inception"].file
    assert REGISTRY["alexnet"].sha256.startswith("7be5be79") and "7be5be79" in REGISTRY["alexnet"].file


def test_missing_weights_error_names_file_hash_and_source(tmp_path):
    store = WeightStore(tmp_path)
    assert not store.available("inception")
    with pytest.raises(MaskfaceError) as e:
        store.path("inception")
    text = str(e.value)
    assert text.startswith(
        f"{tmp_path / 'pt_inception-2015-12-05-6726825d.pth'}: missing; expected sha256 "
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2; get it from "
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    )
    assert "put it in --weights-dir" in text and "\n" not in text


def test_altered_weights_are_refused(eval_weights, tmp_path):
    folder, _ = eval_weights
    with pytest.raises(MaskfaceError, match=r"alex\.pth: sha256 is [0-9a-f]{64}, expected df73285e"):
        WeightStore(folder).path("lpips-alex")  # the published hash, not the test file's


def test_manifest_is_checked(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"inception": {"sha256": "abc"}}))
    with pytest.raises(MaskfaceError, match="sha256 must be 64 hex digits"):
        read_manifest(path)
    path.write_text(json.dumps({"vgg": {"sha256": "0" * 64}}))
    with pytest.raises(MaskfaceError, match="unknown weights key 'vgg'"):
        read_manifest(path)


def test_wrong_network_in_a_weights_file_is_a_one_line_error(eval_weights, tmp_path):
    folder, _ = eval_weights
    wrong = tmp_path / REGISTRY["inception"].file
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    from maskface_rt.evaluation.inception import InceptionFeatures
    from maskface_rt.export_format import sha256_file

    spec = dataclasses.replace(REGISTRY["inception"], sha256=sha256_file(wrong))
    store = WeightStore(tmp_path, {**REGISTRY, "inception": spec})
    with pytest.raises(MaskfaceError, match="state dict does not match pytorch-fid's FID Inception-v3: 564 missing"):
        InceptionFeatures(store, CPU)


def test_pickled_code_is_never_run(tmp_path, capsys):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / REGISTRY["bisenet"].file
    path.write_bytes(pickle.dumps({"x": Boom()}, protocol=2))
    from maskface_rt.evaluation.bisenet import BiSeNetParser
    from maskface_rt.export_format import sha256_file

    spec = dataclasses.replace(REGISTRY["bisenet"], sha256=sha256_file(path))
    with pytest.raises(MaskfaceError, match="cannot load the weights"):
        BiSeNetParser(WeightStore(tmp_path, {**REGISTRY, "bisenet": spec}), CPU)
    assert "pwned" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- FID / KID


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    a = GaussianStats(np.zeros(3), np.diag([1.0, 4.0, 9.0]), 10)
    b = GaussianStats(np.ones(3), np.diag([4.0, 1.0, 0.0]), 10)
    # |mu|^2 + sum (sqrt(s1) - sqrt(s2))^2 for commuting covariances
    assert frechet_distance(a, b) == pytest.approx(3 + 1 + 1 + 9)


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(store, photos):
    from maskface_rt.evaluation.inception import InceptionFeatures

    inception = InceptionFeatures(store, CPU, batch_size=6)
    images = photos[0]
    levels = (0, 15, 60)
    feats = {sigma: inception(_noisy(images, sigma) if sigma else images) for sigma in levels}
    assert feats[0].shape == (12, 2048) and feats[0].dtype == np.float32
    clean = GaussianStats.of(feats[0])
    fids = [frechet_distance(clean, GaussianStats.of(feats[s])) for s in levels]
    assert fids[0] < 1e-6 * fids[1]
    assert fids[0] < fids[1] < fids[2], fids
    # KID is unbiased, so a set against itself scatters around 0 (here slightly below) instead of being 0.
    kids = [kernel_inception_distance(feats[0], feats[s]).mean for s in levels]
    assert abs(kids[0]) < 0.1 * kids[2]
    assert kids[0] < kids[1] < kids[2], kids


def test_kid_is_unbiased_over_random_subsets():
    rng = np.random.default_rng(0)
    x, x2, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(0.5, 1.0, size=(300, 8))
    kid = kernel_inception_distance(x, y, subsets=20, subset_size=100)
    assert kid.subsets == 20 and kid.subset_size == 100 and kid.mean > 0 and kid.std > 0
    same = kernel_inception_distance(x, x2, subsets=20, subset_size=100)
    assert abs(same.mean) < 3 * same.std / np.sqrt(20) + 1e-9 and abs(same.mean) < 0.1 * kid.mean
    whole = kernel_inception_distance(x[:50], y[:50], subsets=20, subset_size=1000)
    assert whole.subsets == 1 and whole.subset_size == 50  # every subset would be the whole of both sets


def test_feature_cache_round_trip_and_key(tmp_path, synth64):
    images = sorted((synth64 / "images").iterdir())[:3]
    key = real_set_key(images, 64, "a" * 64)
    assert key != real_set_key(images, 128, "a" * 64) != real_set_key(images, 64, "b" * 64)
    assert key != real_set_key(images[:2], 64, "a" * 64)
    cache = FeatureCache(tmp_path / "cache")
    assert cache.load(key) is None
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache.save(key, features)
    np.testing.assert_array_equal(cache.load(key), features)
    assert not list((tmp_path / "cache").glob(".*.tmp"))


# ----------------------------------------------------------------------------- consistency, diversity, parity


def test_real_masks_against_themselves_score_one(photos):
    masks = photos[1]
    result = Consistency.of(confusion_matrix(masks, masks))
    assert result.miou == 1.0 and result.pixel_accuracy == 1.0 and result.mean_accuracy == 1.0
    present = set(np.unique(masks))
    for k, name in enumerate(CLASS_NAMES):
        expected = 1.0 if k in present else None
        assert result.class_accuracy[name] == expected and result.class_iou[name] == expected


def test_consistency_counts_errors_per_class():
    target = np.array([[0, 0, 1, 1]], np.uint8)
    predicted = np.array([[0, 1, 1, 2]], np.uint8)
    result = Consistency.of(confusion_matrix(predicted, target))
    assert result.pixel_accuracy == 0.5
    assert result.class_accuracy["background"] == 0.5 and result.class_accuracy["skin"] == 0.5
    assert result.class_accuracy["nose"] is None  # not in the masks
    assert result.class_iou["nose"] == 0.0  # predicted where absent: counts against mIoU
    assert result.miou == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)


def test_colour_parser_finds_regions_painted_in_their_own_colours_and_not_in_noise():
    masks = np.stack([render_pair(3, i, 64)[1] for i in range(2)])
    palette = np.random.default_rng(0).integers(0, 256, (NUM_CLASSES, 3), dtype=np.uint8)
    painted = palette[masks]
    assert colour_parser_consistency(painted, masks).miou == 1.0
    # Two classes of one colour cannot be told apart: the parser's one weakness (left/right eye or brow).
    palette[5] = palette[4]
    assert colour_parser_consistency(palette[masks], masks).miou < 1.0
    noise = np.random.default_rng(1).integers(0, 256, painted.shape, dtype=np.uint8)
    assert colour_parser_consistency(noise, masks).miou < 0.2


def test_pairwise_diversity_over_styles():
    faces = np.zeros((2, 3, 4, 4, 3), np.uint8)
    faces[0, 1] = 255  # mask 0: styles 0 and 2 equal, style 1 opposite
    div = mean_pairwise(faces, pixel_l1)
    np.testing.assert_allclose(div, [2 / 3, 0.0])


def test_parity_of_identical_images_is_exact_and_differences_are_measured():
    a = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    same = ParityAccumulator()
    same.update(a, a.copy())
    p = same.result()
    assert p.psnr_db == math.inf and p.max_abs_error == 0 and p.mean_abs_error == 0 and p.identical_images == 3
    b = a.copy()
    b[0, 0, 0, 0] = a[0, 0, 0, 0] ^ 4
    diff = ParityAccumulator()
    diff.update(a, b)
    p = diff.result()
    assert p.max_abs_error == 4 and p.identical_images == 2
    assert p.psnr_db == pytest.approx(10 * math.log10(255**2 / (16 / a.size)))


# ----------------------------------------------------------------------------- networks


def test_lpips_is_zero_for_equal_images_and_symmetric(store, photos):
    from maskface_rt.evaluation.lpips import LPIPS

    lpips = LPIPS(store, CPU)
    a, b = photos[0][:4], photos[0][4:8]
    np.testing.assert_allclose(lpips(a, a), 0.0, atol=1e-7)
    d = lpips(a, b)
    assert d.shape == (4,) and (d > 0).all()
    np.testing.assert_allclose(d, lpips(b, a), rtol=1e-5)


def test_bisenet_loads_the_published_layout_and_predicts_canonical_labels(store, photos):
    from maskface_rt.evaluation.bisenet import BiSeNetParser

    parser = BiSeNetParser(store, CPU)
    labels = parser.predict(photos[0][:2])
    assert labels.shape == (2, 64, 64) and labels.dtype == np.uint8
    with torch.inference_mode():
        x = torch.from_numpy(photos[0][:2]).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(512, 512), mode="bilinear", align_corners=False)
        logits = parser.net((x - parser.mean) / parser.std)
        logits = torch.nn.functional.interpolate(
            logits, size=(64, 64), mode="bilinear", align_corners=False, antialias=True
        )
    raw = logits.argmax(1).numpy()
    np.testing.assert_array_equal(labels, FACEPARSING_TO_CELEBAMASK[raw])


@pytest.mark.slow
def test_a_parser_trained_for_a_few_steps_beats_chance(synth64, tmp_path):
    from maskface_rt.evaluation.unet_parser import TrainedParser, train_parser

    pairs = open_dataset(synth64, size=64)
    out = tmp_path / "parser.safetensors"
    steps = []
    result = train_parser(pairs, out, steps=40, batch_size=8, width=8, on_step=lambda s, _loss, _acc: steps.append(s))
    assert steps == list(range(1, 41)) and out.is_file() and result.pairs == len(pairs)
    parser = TrainedParser(out, CPU)
    images = np.stack([pairs[i][0] for i in range(len(pairs))])
    masks = np.stack([pairs[i][1] for i in range(len(pairs))])
    scores = Consistency.of(confusion_matrix(parser.predict(images), masks))
    majority = np.bincount(masks.ravel(), minlength=NUM_CLASSES).max() / masks.size
    assert scores.pixel_accuracy > majority, (scores.pixel_accuracy, majority)
    chance = Consistency.of(confusion_matrix(np.random.default_rng(0).integers(0, NUM_CLASSES, masks.shape), masks))
    assert scores.miou > 2 * chance.miou
    with pytest.raises(MaskfaceError, match="already exists"):
        train_parser(pairs, out, steps=1)
