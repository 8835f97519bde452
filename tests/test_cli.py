"""The maskface CLI package: every command registered, shared options checked the same way everywhere."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import cli_commands, maskface_here
from typer.testing import CliRunner

from maskface_rt.cli import COMMANDS, app


def _invoke(*args: str):
    # A wide terminal, so that a one-line message stays on one line inside typer's error box.
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "300"})


def test_every_command_module_is_registered_and_listed():
    listed = _invoke("--help")
    assert listed.exit_code == 0
    for name in COMMANDS:
        assert f" {name} " in listed.stdout, name
        assert _invoke(name, "--help").exit_code == 0, name


def test_python_dash_m_and_the_entry_point_module_run():
    done = subprocess.run([sys.executable, "-m", "maskface_rt", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("maskface-rt ")


def test_the_version_has_one_home_pyproject_and_every_command_shows_it():
    import tomllib

    declared = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in declared.get("dynamic", [])
    assert _invoke("--version").stdout.strip() == f"maskface-rt {declared['version']}"
    doctor = json.loads(_invoke("doctor", "--json").stdout)
    (check,) = [c for c in doctor["checks"] if c["name"] == "maskface-rt"]
    assert check["detail"] == declared["version"]


@pytest.mark.parametrize(
    ("args", "flag", "valid"),
    [
        (["train", "nowhere", "--out", "x", "--label-order", "bisenet"], "--label-order", "celebamask, faceparsing"),
        (["generate", "nowhere", "--out", "x", "--label-order", "bisenet"], "--label-order", "celebamask, faceparsing"),
        (["eval", "train-parser", "nowhere", "--out", "x", "--label-order", "x"], "--label-order", "celebamask"),
        (["generate", "nowhere", "--out", "x", "--device", "gpu"], "--device", "auto, cpu, cuda, cuda:N"),
        (["train", "nowhere", "--out", "x", "--device", "cuda:x"], "--device", "auto, cpu, cuda, cuda:N"),
        (["build", "nowhere", "--out", "x.engine", "--device", "tpu"], "--device", "auto, cpu, cuda, cuda:N"),
        (["generate", "nowhere", "--out", "x", "--backend", "tvm"], "--backend", "onnxruntime, openvino, torch"),
        (["eval", "nowhere", "--data", "x", "--backend", "tvm"], "--backend", "tensorrt-rtx"),
        (["generate", "nowhere", "--out", "x", "--precision", "fp8"], "--precision", "auto, fp32, bf16"),
    ],
)
def test_shared_options_exit_2_with_one_line_naming_the_flag_and_the_valid_values(args, flag, valid):
    done = _invoke(*args)
    assert done.exit_code == 2, (done.stderr, done.exception)
    lines = [line for line in done.stderr.splitlines() if flag in line and valid in line]
    assert len(lines) == 1, done.stderr


@pytest.mark.parametrize(
    "args, fresh",
    [
        (["--version"], True),
        (["doctor", "--json"], False),
        (["info", "{model}", "--json"], False),
        (["generate", "{masks}", "--out", "{out}", "--json"], True),
    ],
    ids=["version", "doctor", "info", "generate"],
)
def test_output_that_cannot_be_written_is_one_line_exit_1(args, fresh, tmp_path):
    """stdout on a full disk (/dev/full): one line naming it, exit 1, never a traceback; generate's images stay.
    In a fresh process where what the interpreter does at exit matters (nothing may be left to flush then), else
    through the entry point in this one."""
    from maskface_rt.bundled import default_model

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    examples = Path(__file__).resolve().parents[1] / "examples" / "masks"
    names = {"model": str(default_model()), "masks": str(examples), "out": str(tmp_path / "out")}
    args = [arg.format(**names) for arg in args]
    full = open("/dev/full", "w")  # noqa: SIM115  (closed below: what the command could not write stays buffered)
    if fresh:
        command = [sys.executable, "-m", "maskface_rt", *args]
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    else:
        done = maskface_here(*args, stdout=full)
    with contextlib.suppress(OSError):
        full.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: stdout: cannot write (No space left on device)"
    if args[0] == "generate":
        assert len(list((tmp_path / "out").glob("*.png"))) > 0


def _cli_flags() -> set[str]:
    """Every --flag of every command and subcommand."""
    return {
        flag
        for _, command in cli_commands()
        for param in command.params
        for flag in (*param.opts, *param.secondary_opts)
        if flag.startswith("--")
    }


def _option_names_the_library_uses() -> set[str]:
    """Every option an OptionError of the library names (a literal first argument), and the limit tables' fields."""
    import ast

    from maskface_rt.generation.distributed import RAY_LIMITS
    from maskface_rt.generation.plan import LIMITS

    root = Path(__file__).resolve().parent.parent
    names = set(LIMITS) | {f"ray.{name}" for name in RAY_LIMITS}
    for path in [*(root / "maskface_rt").rglob("*.py"), *(root / "export").glob("*.py")]:
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "OptionError" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
    return names


def test_every_option_the_library_names_is_shown_as_a_flag_the_cli_has():
    from maskface_rt.cli.options import flag_for

    names = _option_names_the_library_uses()
    assert {"batch_size", "ray.workers", "precision", "compute_capabilities", "max_batch", "opset"} <= names
    flags = _cli_flags()
    assert {name: flag_for(name) for name in names if flag_for(name) not in flags} == {}
