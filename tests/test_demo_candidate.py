"""benchmarks/demo_candidate.py (make demo-candidate): a candidate judged against a copy of the bundled model on the
demo-quality benchmark at tiny sizes; the real bundled model is only ever read here."""

import argparse
import hashlib
import shutil
from pathlib import Path

import pytest
from script_support import benchmark_script

pytest.importorskip("torch")

from maskface_rt.bundled import BUNDLED_MODEL  # noqa: E402
from maskface_rt.errors import MaskfaceError  # noqa: E402


def _files(folder: Path) -> dict[str, str]:
    """Each file of a folder (names relative to it) and its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _args(candidate: Path, target: Path, work: Path, report: Path, **kw) -> argparse.Namespace:
    """demo_candidate's options at tiny sizes: 64 parser pairs, 50 parser steps, 8 masks x 2 styles."""
    argv = [str(candidate), "--target", str(target), "--work", str(work), "--report", str(report)]
    argv += ["--train-pairs", "64", "--held-out-pairs", "8", "--parser-steps", "50", "--limit", "8", "--styles", "2"]
    argv += ["--sheet-styles", "2", *kw.get("extra", [])]
    return benchmark_script("demo_candidate").parse_args(argv)


@pytest.fixture(scope="module")
def judged_worse(synth64, tmp_path_factory) -> dict:
    """The command run once on a tiny-64 checkpoint trained two steps on the CPU (far worse than the bundled model)
    with a copy of the bundled model as the target; its scratch folder (data, parser, the checkpoint's export) is
    reused by the other tests."""
    from maskface_rt.config import TrainConfig, preset
    from maskface_rt.datasets import open_dataset
    from maskface_rt.trainer import train

    root = tmp_path_factory.mktemp("demo-candidate")
    tcfg = TrainConfig(batch_size=2, num_workers=0, checkpoint_every=0, sample_every=0, log_every=1)
    trained = train(open_dataset(synth64, size=64), root / "run", cfg=preset("tiny-64"), tcfg=tcfg, steps=2)
    target = root / "data" / "demo-model"
    shutil.copytree(BUNDLED_MODEL, target)
    before, report, work = _files(target), root / "report.md", root / "work"
    record = benchmark_script("demo_candidate").run(_args(trained.model, target, work, report))
    return {"record": record, "target": target, "before": before, "report": report, "work": work}


@pytest.mark.slow
def test_a_worse_candidate_does_not_replace_the_bundled_model(judged_worse):
    record, target, report = judged_worse["record"], judged_worse["target"], judged_worse["report"]
    assert record["better"] is False and record["replaced"] is False and record["kept"] is None
    assert record["reason"].startswith("generated mIoU ") and "not above the target's" in record["reason"]
    candidate, bundled = record["candidate"]["figures"], record["target"]["figures"]
    assert candidate["miou_fraction"] < bundled["miou_fraction"]
    assert _files(target) == judged_worse["before"] and sorted(p.name for p in target.parent.iterdir()) == [
        "demo-model"
    ]
    assert not list(judged_worse["work"].glob("replaced-*"))
    text = report.read_text()
    assert "**Verdict:** not better" in text and "The target was not replaced." in text
    assert "| **generated / real mIoU** |" in text and "![contact sheets](report.png)" in text
    assert report.with_suffix(".json").is_file() and report.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow
def test_a_better_candidate_replaces_the_target_whole_and_the_old_one_is_kept(judged_worse, tmp_path):
    """The rule's other side: the two-step model's export as the target, the bundled model as the candidate."""
    target = tmp_path / "data" / "demo-model"
    shutil.copytree(judged_worse["record"]["candidate"]["model"], target)
    old, bundled = _files(target), _files(BUNDLED_MODEL)
    record = benchmark_script("demo_candidate").run(
        _args(BUNDLED_MODEL, target, judged_worse["work"], tmp_path / "report.md")
    )
    assert record["better"] is True and record["replaced"] is True, record["reason"]
    assert _files(target) == bundled and _files(Path(record["kept"])) == old
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo-model"]  # no staging folder left
    assert _files(BUNDLED_MODEL) == bundled
    assert "The target was replaced; the old model is in" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_no_replace_judges_without_touching_the_target(judged_worse, tmp_path):
    target = tmp_path / "demo-model"
    shutil.copytree(judged_worse["record"]["candidate"]["model"], target)
    before = _files(target)
    args = _args(BUNDLED_MODEL, target, judged_worse["work"], tmp_path / "r.md", extra=["--no-replace"])
    record = benchmark_script("demo_candidate").run(args)
    assert record["better"] is True and record["replaced"] is False and _files(target) == before
    assert "The target was not replaced (--no-replace)." in (tmp_path / "r.md").read_text()


def test_a_candidate_of_another_size_is_refused_in_one_line_before_any_work(tmp_path):
    import torch

    from maskface_rt.checkpoint import save_model
    from maskface_rt.config import preset
    from maskface_rt.networks import Nets

    demo_candidate = benchmark_script("demo_candidate")
    torch.manual_seed(0)
    model = tmp_path / "tiny128.safetensors"
    save_model(model, Nets(preset("tiny-128"), with_discriminator=False))
    target = tmp_path / "demo-model"
    shutil.copytree(BUNDLED_MODEL, target)
    with pytest.raises(MaskfaceError, match="makes 128 px faces, the target .* makes 64 px: the benchmark compares"):
        demo_candidate.run(_args(model, target, tmp_path / "work", tmp_path / "r.md"))
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "work").exists()


def test_the_rule_wants_higher_consistency_and_no_collapse_of_diversity():
    judge = benchmark_script("demo_candidate").judge
    target = {"miou_fraction": 0.845, "diversity_fraction": 0.868}
    assert judge({"miou_fraction": 0.86, "diversity_fraction": 0.80}, target)[0] is True
    assert judge({"miou_fraction": 0.845, "diversity_fraction": 0.90}, target) == (
        False,
        "generated mIoU 84.5% of real, not above the target's 84.5%",
    )
    collapsed = judge({"miou_fraction": 0.95, "diversity_fraction": 0.10}, target)
    assert collapsed[0] is False and "under the floor of 75%" in collapsed[1]
    assert judge({"miou_fraction": 0.95}, target) == (False, "a figure is missing")
