import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import maskface

torch = pytest.importorskip("torch")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from maskface_rt.checkpoint import load_model, load_state, read_config, read_metadata, save_model  # noqa: E402
from maskface_rt.config import TrainConfig, preset  # noqa: E402
from maskface_rt.datasets import open_dataset  # noqa: E402
from maskface_rt.errors import MaskfaceError  # noqa: E402
from maskface_rt.networks import Nets  # noqa: E402
from maskface_rt.train_data import StepBatchSampler, TorchPairs  # noqa: E402
from maskface_rt.trainer import Trainer, train  # noqa: E402

TINY = preset("tiny-64")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _fast(**kw) -> TrainConfig:
    return TrainConfig(
        **{"batch_size": 2, "num_workers": 0, "checkpoint_every": 0, "sample_every": 0, "log_every": 1, **kw}
    )


@torch.no_grad()
def _reconstruction_error(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> float:
    nets = trainer.nets.eval()
    return float((nets.generator(labels, nets.style_decoder(images)) - images).abs().mean())


@pytest.mark.slow
def test_a_few_steps_lower_the_reconstruction_loss(synth64):
    pairs = open_dataset(synth64, size=64)
    data = TorchPairs(pairs)
    images, labels = (torch.stack(t) for t in zip(*(data[i] for i in range(8))))
    trainer = Trainer(TINY, _fast(batch_size=4), torch.device("cpu"))
    before = _reconstruction_error(trainer, images, labels)
    sampler = iter(StepBatchSampler(len(data), 4, seed=0))
    for step in range(5):  # measured (Zen 5): 0.90, 0.86, 0.82, 0.75, 0.705 of the error before, 0.58 at 10 steps
        batch = [data[i] for i in next(sampler)]
        trainer.train_step(step, torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch]))
    after = _reconstruction_error(trainer, images, labels)
    assert after < 0.8 * before, (before, after)


@pytest.mark.slow
def test_resume_continues_exactly(synth64, tmp_path):
    pairs = open_dataset(synth64, size=64)
    straight = train(pairs, tmp_path / "straight", cfg=TINY, tcfg=_fast(), steps=4)
    first = train(pairs, tmp_path / "resumed", cfg=TINY, tcfg=_fast(), steps=2)
    assert (first.start_step, first.steps) == (0, 2)
    second = train(pairs, tmp_path / "resumed", cfg=None, tcfg=TrainConfig(), steps=4, resume=True)
    assert (second.start_step, second.steps) == (2, 4)
    assert read_metadata(second.model)["step"] == "4"
    a, b = _tensors(straight.model), _tensors(second.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps_logged = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert steps_logged == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == [
        "step_000002.safetensors",
        "step_000004.safetensors",
    ]
    assert (tmp_path / "resumed" / "samples" / "step_000004.png").is_file()


@pytest.mark.slow
def test_a_time_limit_stops_at_the_step_under_way_and_leaves_a_resumable_run(synth64, tmp_path):
    """``--time-limit`` (make gpu-session's bound on training): the run ends at the first step past the limit, written
    as if --steps had said that step (model, checkpoint, state, log line), and resumes from there."""
    pairs = open_dataset(synth64, size=64)
    run = tmp_path / "run"
    stopped = train(pairs, run, cfg=TINY, tcfg=_fast(), steps=50, time_limit=1e-6)
    assert (stopped.start_step, stopped.steps, stopped.stopped_by_time_limit) == (0, 1, True)
    assert read_metadata(stopped.model)["step"] == "1"
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001.safetensors"]
    resumed = train(pairs, run, cfg=None, tcfg=TrainConfig(), steps=2, resume=True, time_limit=0)
    assert (resumed.start_step, resumed.steps, resumed.stopped_by_time_limit) == (1, 2, False)


def _optimizer_groups_after_resume(synth64: Path, run: Path, steps: int, overrides: dict) -> dict[str, dict]:
    """One tiny step, then a resume to ``steps`` with ``overrides``: each optimizer's param group at the end."""
    pairs = open_dataset(synth64, size=64)
    train(pairs, run, cfg=TINY, tcfg=_fast(), steps=1)
    train(pairs, run, cfg=None, tcfg=TrainConfig(), steps=steps, resume=True, overrides=overrides)
    _, state = load_state(run / "state.safetensors")
    return {name: opt["param_groups"][0] for name, opt in state["optims"].items()}


@pytest.mark.slow
def test_rates_given_on_resume_reach_the_optimizers(synth64, tmp_path):
    groups = _optimizer_groups_after_resume(
        synth64, tmp_path / "run", 2, {"lr": 3e-4, "beta1": 0.5, "weight_decay": 0.0}
    )
    for name in ("generator", "style_decoder", "discriminator"):
        assert groups[name]["lr"] == 3e-4, name
    assert groups["style_encoder"]["lr"] == TrainConfig().mapping_lr
    assert all(tuple(g["betas"]) == (0.5, 0.99) and g["weight_decay"] == 0.0 for g in groups.values())


def test_lr_decay_schedule():
    from maskface_rt.losses import lr_factor

    constant = TrainConfig()
    assert [lr_factor(constant, t) for t in (0, 10**6)] == [1.0, 1.0]
    decay = TrainConfig(lr_decay_start=100, lr_decay_steps=50)
    assert [lr_factor(decay, t) for t in (0, 100, 125, 150, 10**6)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="lr_decay_steps must be >= 0"):
        TrainConfig(lr_decay_steps=-1)


@pytest.mark.slow
def test_lr_decay_reaches_the_optimizers_and_the_log(synth64, tmp_path):
    groups = _optimizer_groups_after_resume(synth64, tmp_path / "run", 3, {"lr_decay_start": 1, "lr_decay_steps": 4})
    base = TrainConfig()
    for name in ("generator", "style_decoder", "discriminator"):
        assert groups[name]["lr"] == pytest.approx(base.lr * 0.75), name  # the rate of the last step, t = 2
    assert groups["style_encoder"]["lr"] == pytest.approx(base.mapping_lr * 0.75)
    logged = [json.loads(line)["lr"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([base.lr, base.lr, base.lr * 0.75])


def test_run_folder_guards(synth64, tmp_path):
    pairs = open_dataset(synth64, size=64)
    with pytest.raises(MaskfaceError, match="no training state to resume"):
        train(pairs, tmp_path / "run", cfg=TINY, tcfg=_fast(), steps=1, resume=True)
    train(pairs, tmp_path / "run", cfg=TINY, tcfg=_fast(), steps=1)
    with pytest.raises(MaskfaceError, match="already holds a training run"):
        train(pairs, tmp_path / "run", cfg=TINY, tcfg=_fast(), steps=2)
    with pytest.raises(MaskfaceError, match="already at step 1"):
        train(pairs, tmp_path / "run", cfg=None, tcfg=_fast(), steps=1, resume=True)
    with pytest.raises(MaskfaceError, match="trained with"):
        train(pairs, tmp_path / "run", cfg=preset("tiny-128"), tcfg=_fast(), steps=2, resume=True)


def test_model_file_round_trip_is_exact(tmp_path):
    nets = Nets(TINY)
    path = tmp_path / "m.safetensors"
    save_model(path, nets, weights="raw", step=7)
    loaded = load_model(path)
    assert loaded.cfg == TINY and loaded.discriminator is None
    assert read_config(path) == TINY
    for name in ("generator", "style_encoder", "style_decoder"):
        own, back = getattr(nets, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(own[k], back[k]) for k in own)
    labels = torch.randint(0, 19, (1, 64, 64))
    s = torch.randn(1, TINY.style_dim)
    with torch.no_grad():
        assert torch.equal(nets.eval().generator(labels, s), loaded.generator(labels, s))
    with pytest.raises(MaskfaceError, match="already exists"):
        save_model(path, nets)


def test_model_file_gets_the_mode_of_a_plainly_created_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, Nets(TINY))
    plain = tmp_path / "plain"
    plain.touch()
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_checkpoint_whose_config_does_not_match(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, Nets(TINY))
    meta = read_metadata(path)
    meta["config"] = preset("tiny-128").to_json()
    save_file(_tensors(path), str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(MaskfaceError, match=r"bad\.safetensors: model does not match its config"):
        load_model(tmp_path / "bad.safetensors")
    with pytest.raises(MaskfaceError, match="does not match the expected"):
        load_model(path, expect=preset("tiny-128"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(MaskfaceError, match="junk.safetensors: not a readable safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(MaskfaceError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors")


def test_bf16_autocast_step_on_cpu():
    trainer = Trainer(TINY, _fast(amp="bf16"), torch.device("cpu"))
    assert trainer.autocast_dtype == torch.bfloat16
    losses = trainer.train_step(0, torch.rand(2, 3, 64, 64) * 2 - 1, torch.randint(0, 19, (2, 64, 64)))
    assert all(np.isfinite(v) for v in losses.values())


def _two_tiny_steps(data: Path, run: Path, *extra: str) -> list[str]:
    """``maskface train`` arguments: two tiny-64 steps at batch 2, no loader workers."""
    return [
        "train",
        str(data),
        "--out",
        str(run),
        "--preset",
        "tiny-64",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--num-workers",
        "0",
        *extra,
    ]


@pytest.mark.slow
def test_cli_train_writes_a_loadable_model_and_refuses_reuse(synth64, tmp_path):
    run = tmp_path / "run"
    args = _two_tiny_steps(synth64, run, "--json")
    done = maskface(*args, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["steps"] == 2 and Path(summary["model"]).is_file()
    assert load_model(summary["model"]).cfg == TINY
    again = maskface(*args, timeout=600)
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        .splitlines()[-1]
        .endswith("already holds a training run (pass --resume to continue it, or choose another --out)")
    )
    bad = maskface("train", str(synth64), "--out", str(tmp_path / "x"), "--preset", "tiny-32")
    assert bad.returncode == 2 and "unknown preset" in bad.stderr
    missing = maskface("train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y"), "--preset", "tiny-64")
    assert missing.returncode == 1 and "nowhere: no such folder" in missing.stderr
    assert not (tmp_path / "y").exists()


#: Runs the CLI under torchrun with a probe: after each step, every rank's parameters (all four networks) are
#: summed two ways and gathered on rank 0, which appends one JSON line per step to $DDP_PROBE.
_DDP_PROBE = """
import json, os, runpy, sys
import torch, torch.distributed as dist
from maskface_rt import trainer

step = trainer.Trainer.train_step


def probed(self, *args):
    losses = step(self, *args)
    flat = torch.cat([p.detach().double().flatten() for p in self.nets.parameters()])
    sums = torch.stack([flat.sum(), (flat * torch.linspace(0, 1, len(flat), dtype=torch.float64)).sum()])
    gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    if dist.get_rank() == 0:
        with open(os.environ["DDP_PROBE"], "a") as f:
            f.write(json.dumps([g.tolist() for g in gathered]) + "\\n")
    return losses


trainer.Trainer.train_step = probed
runpy.run_module("maskface_rt", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_distributed_data_parallel_keeps_the_ranks_weights_identical(synth64, tmp_path):
    """torchrun with two CPU processes (gloo), the command that runs on several GPUs with NCCL. The ranks train on
    different samples and noise, so their weights stay equal only if their gradients are averaged."""
    run, probe, script = tmp_path / "ddp", tmp_path / "probe.jsonl", tmp_path / "ddp_probe.py"
    script.write_text(_DDP_PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DDP_PROBE": str(probe)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, str(script), *_two_tiny_steps(synth64, run, "--device", "cpu")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert load_model(run / "model.safetensors").cfg == TINY
    steps = [json.loads(line) for line in probe.read_text().splitlines()]
    assert len(steps) == 2 and all(len(ranks) == 2 for ranks in steps)
    assert all(ranks[0] == ranks[1] for ranks in steps), steps  # bit-identical on both ranks, step after step
    assert steps[0] != steps[1]  # and they did change
