"""Deliberate bugs, each of which the named tests must catch (``make mutation-check``; CI runs it).

    python tools/mutation_check.py [--only NAME,...] [--list]

For each mutation: the file's text is changed in place (one exact replacement), the named tests run, and the
file is put back whatever happens (Ctrl-C and SIGTERM included). A mutation is *caught* when pytest reports a
failed test (exit 1); it *survived* when the tests pass, and is *broken* when its text is no longer in the file
or pytest could not run (exit 2-5): both fail the check. Add a mutation whenever a test is found that could not
fail: the table below is the list of behaviours a test has been seen to guard.

Exit status: 0 every mutation caught, 1 one survived or is broken, 2 bad option.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str  # the behaviour the tests guard, in a few words
    path: str  # relative to the repository
    old: str  # exact text, found once
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


MUTATIONS = (
    Mutation(
        "registry-name",
        "each backend class answers to its registry row's name",
        "maskface_rt/backends/openvino_backend.py",
        '    name = "openvino"\n',
        '    name = "tvm"\n',
        ("tests/test_registry.py", "-k", "one_table"),
    ),
    Mutation(
        "serve-batching-off",
        "queued faces share backend calls of at most --max-batch",
        "maskface_rt/serve/batcher.py",
        "self.max_batch = min(max_batch, backend.max_batch or max_batch)",
        "self.max_batch = 1",
        ("tests/test_serve.py", "-k", "share_backend_calls or max_delay"),
    ),
    Mutation(
        "serve-delay-ignored",
        "--max-delay-ms lets a face wait for company",
        "maskface_rt/serve/batcher.py",
        "deadline = time.monotonic() + self.max_delay_s",
        "deadline = time.monotonic()",
        ("tests/test_serve.py", "-k", "max_delay"),
    ),
    Mutation(
        "serve-flag-dropped",
        "maskface serve's flags reach the running service",
        "maskface_rt/cli/serve.py",
        "        max_body_bytes=int(max_body_mb * 2**20),\n",
        "",
        ("tests/test_serve.py", "-k", "real_serve"),
    ),
    Mutation(
        "ddp-gradients-not-averaged",
        "data-parallel ranks keep identical weights",
        "maskface_rt/trainer.py",
        "        if self.dist.world_size == 1:\n            return module\n",
        "        if True:\n            return module\n",
        ("tests/test_training.py", "-k", "distributed"),
    ),
    Mutation(
        "native-bf16-override-ignored",
        "$MASKFACE_NATIVE_BF16 decides auto's branch on any CPU",
        "maskface_rt/backends/probes.py",
        'value = os.environ.get(NATIVE_BF16_ENV, "").strip()',
        'value = ""',
        ("tests/test_bundled.py", "tests/test_export.py", "-k", "autos_backend or backend_choice"),
    ),
    Mutation(
        "makefile-override-ignored",
        "make demo's extra follows $MASKFACE_NATIVE_BF16",
        "Makefile",
        "NATIVE_BF16 := $(or $(strip $(MASKFACE_NATIVE_BF16)),",
        "NATIVE_BF16 := $(or ,",
        ("tests/test_bundled.py", "-k", "make_demo"),
    ),
    Mutation(
        "compare-precision-ignored",
        "eval --compare openvino@PRECISION runs that precision",
        "maskface_rt/evaluation/runner.py",
        "precision=comparison.precision)",
        'precision="auto")',
        ("tests/test_openvino_backend.py", "-k", "eval_compares"),
    ),
    Mutation(
        "bench-rounds-sequential",
        "bench alternates its rows round by round",
        "maskface_rt/benchmarking/suite.py",
        "    for _ in range(options.rounds):\n        for runner in runners:\n",
        "    for runner in runners:\n        for _ in range(options.rounds):\n",
        ("tests/test_benchmarking.py", "-k", "alternate"),
    ),
    Mutation(
        "bench-row-of-no-backend",
        "every bench row is a variant of a registry row",
        "maskface_rt/benchmarking/variants.py",
        '    Variant("tensorrt", "fp16", plugin=True),\n)',
        '    Variant("tensorrt", "fp16", plugin=True),\n    Variant("jax", "fp32"),\n)',
        ("tests/test_benchmarking.py", "-k", "every_bench_row"),
    ),
    Mutation(
        "bench-memory-counts-later-runners",
        "a row's peak memory leaves out the runners loaded after it",
        "maskface_rt/benchmarking/memory.py",
        "return self.footprint + max(now - self.row_start, 0)",
        "return max(now - self.baseline, 0)",
        ("tests/test_benchmarking.py", "-k", "memory_probe"),
    ),
    Mutation(
        "bf16-target-per-isa-swapped",
        "the bf16 target follows the CPU's bf16 instructions",
        "maskface_rt/benchmarking/targets.py",
        'BF16_RATIOS = (("amx_bf16", 2.5), ("avx512_bf16", 1.8))',
        'BF16_RATIOS = (("avx512_bf16", 1.8), ("amx_bf16", 2.5))',
        ("tests/test_benchmarking.py", "-k", "bf16_target"),
    ),
    Mutation(
        "cuda-graph-stale-pointers",
        "a captured CUDA graph keeps the buffers it was captured with",
        "maskface_rt/backends/trt/runner.py",
        "        count = self._check_feeds(feeds)\n        result = np.empty(",
        "        count = self._check_feeds(feeds)\n"
        '        spare = getattr(self, "_spare", None)  # double-buffered I/O, re-pointed but never re-captured\n'
        "        if spare is None:\n"
        "            saved, self.buffers = self.buffers, {}\n"
        "            self._allocate()\n"
        "            spare, self.buffers = self.buffers, saved\n"
        "        self._spare, self.buffers = self.buffers, spare\n"
        "        for batch_ctx in self._contexts.values():\n"
        "            for name, buf in self.buffers.items():\n"
        "                batch_ctx.context.set_tensor_address(name, buf.device_ptr)\n"
        "        result = np.empty(",
        ("tests/test_tensorrt_backend.py", "-k", "splits_pads"),
    ),
    Mutation(
        "seed-ignored",
        "style k of seed s depends on both",
        "maskface_rt/backends/base.py",
        "    return np.random.default_rng(np.random.SeedSequence([seed, k]))",
        "    return np.random.default_rng(np.random.SeedSequence([0, k]))",
        ("tests/test_generate.py", "-k", "seed"),
    ),
    Mutation(
        "uint8-truncates",
        "images round half up to uint8",
        "maskface_rt/networks.py",
        "((x.float() + 1.0) * 127.5 + 0.5).floor()",
        "((x.float() + 1.0) * 127.5).floor()",
        ("tests/test_graph_contract.py",),
    ),
    Mutation(
        "atomic-write-plain",
        "files are written atomically and never overwritten unasked",
        "maskface_rt/fileio.py",
        "    with atomic_path(path, overwrite=overwrite) as tmp:\n        tmp.write_bytes(data)\n",
        "    Path(path).write_bytes(data)\n",
        ("tests/test_trust.py", "tests/test_generate.py"),
    ),
    Mutation(
        "any-image-format-decoded",
        "only the documented image formats reach a decoder (EPS never reaches Ghostscript)",
        "maskface_rt/image_io.py",
        "img = Image.open(path, formats=READ_FORMATS)",
        "img = Image.open(path)",
        ("tests/test_mask_io.py", "-k", "never"),
    ),
    Mutation(
        "parity-bound-ignored",
        "a parity check fails below its bound",
        "maskface_rt/parity.py",
        "return self.value >= self.bound if METRICS[self.metric][1] else self.value <= self.bound",
        "return True",
        ("tests/test_graph_contract.py",),
    ),
    Mutation(
        "build-parity-failure-ignored",
        "engines that fail their parity check are never written",
        "export/engine_builder.py",
        "        failed = [p for p in parity if not p.passed]\n",
        "        failed = []\n",
        ("tests/test_rtx_build.py", "-k", "parity_check"),
    ),
    Mutation(
        "serve-decodes-unbounded",
        "serve decodes at most two uploads at once (its documented memory bound)",
        "maskface_rt/serve/app.py",
        "    max_decodes: int = 2\n",
        "    max_decodes: int = 8\n",
        ("tests/test_serve.py", "-k", "burst"),
    ),
    Mutation(
        "sidecar-unchecked",
        "every engine sidecar field is checked for type and range",
        "maskface_rt/backends/trt/engine_file.py",
        "        if problems := sidecar_problems(data):\n",
        "        if problems := []:\n",
        ("tests/test_engine_format.py", "-k", "wrong_type_or_range"),
    ),
    Mutation(
        "plugin-warning-on-stdout",
        "what tensorrt.plugin prints on import stays off stdout",
        "maskface_rt/backends/trt/compat.py",
        "        os.dup2(2, 1)\n",
        "        pass\n",
        ("tests/test_tensorrt11.py", "-k", "decorators"),
    ),
    Mutation(
        "broken-tensorrt-chosen",
        "a TensorRT that cannot load is not the runtime choice",
        "maskface_rt/backends/trt/compat.py",
        "if r.installed and r.import_problem() is None]",
        "if r.installed]",
        ("tests/test_tensorrt11.py", "-k", "native_libraries"),
    ),
    Mutation(
        "import-circle",
        "the package's import graph has no circle",
        "maskface_rt/backends/registry.py",
        'AUTO = "auto"\n',
        'AUTO = "auto"\n\n\ndef _late():\n    from maskface_rt.backends.openvino_backend import resolve_precision  # noqa: F401\n',
        ("tests/test_import_graph.py",),
    ),
    Mutation(
        "option-names-not-flags",
        "an option the library names is shown by the CLI as its own flag",
        "maskface_rt/cli/options.py",
        "return _IRREGULAR_FLAGS.get(option) or ",
        "return ",
        ("tests/test_cli.py", "-k", "library_names"),
    ),
    Mutation(
        "empty-path-is-cwd",
        "an empty path option is a usage error, not the current folder",
        "maskface_rt/cli/options.py",
        "    if not value.strip():\n",
        "    if False:\n",
        ("tests/test_trust.py", "-k", "empty_path"),
    ),
    Mutation(
        "triton-faces-differ",
        "a face served by Triton (python flavour, real tritonserver) is generate's, byte for byte",
        "maskface_rt/triton/python_model.py",
        "out = np.ascontiguousarray(next(outputs))",
        "out = np.ascontiguousarray(next(outputs)[..., ::-1])",
        ("tests/test_triton_server.py", "-k", "byte_identical"),
    ),
    Mutation(
        "triton-label-unchecked",
        "Triton refuses a label outside the model's classes, and only that request",
        "maskface_rt/triton/python_model.py",
        "if labels.size and int(labels.max()) >= num_classes:",
        "if False:",
        ("tests/test_triton_server.py", "-k", "bad_inputs or own_request"),
    ),
    Mutation(
        "triton-overwrites-unasked",
        "maskface triton never replaces a model folder unasked",
        "maskface_rt/triton/repository.py",
        "    if taken and not options.overwrite:",
        "    if False:",
        ("tests/test_triton_repository.py", "-k", "never_replaced"),
    ),
    Mutation(
        "worse-demo-candidate-replaces",
        "the bundled demo model is replaced only by a candidate better on the demo benchmark",
        "benchmarks/demo_candidate.py",
        "    if better and not args.no_replace:\n",
        "    if not args.no_replace:\n",
        ("tests/test_demo_candidate.py", "-k", "worse_candidate"),
    ),
    Mutation(
        "stop-exits-by-sigint",
        "a stop caught after code run from a string still exits 130/143, not by SIGINT",
        "maskface_rt/errors.py",
        '        exec("None")  # a constant string',
        "        pass  # a constant string",
        ("tests/test_interrupts.py", "-k", "code_run_from_a_string"),
    ),
    Mutation(
        "help-default-read-as-markup",
        "no help text is read as rich markup and dropped from --help and docs/cli.md",
        "maskface_rt/cli/train.py",
        "bf16, fp16, off (default: auto).",
        "bf16, fp16, off [auto].",
        ("tests/test_cli_docs.py", "-k", "markup"),
    ),
    Mutation(
        "bench-reference-sliced",
        "a bench row is compared with torch fp32 run at the row's own batch size",
        "maskface_rt/benchmarking/models.py",
        "out = {batch: backend.generate(labels[:batch], styles[:batch]) for batch in sorted(set(batches))}",
        "out = {batch: backend.generate(labels, styles)[:batch] for batch in sorted(set(batches))}",
        ("tests/test_benchmarking.py", "-k", "reference_of_each"),
    ),
    Mutation(
        "openvino-bf16-silently-fp32",
        "a bf16 asked for where OpenVINO compiles fp32 is refused, naming the option",
        "maskface_rt/backends/openvino_backend.py",
        'if precision == "bf16" and executed != "bf16":',
        'if False and executed != "bf16":',
        ("tests/test_openvino_backend.py", "-k", "compiles_fp32_is_refused"),
    ),
    Mutation(
        "ci-accepts-any-skip",
        "in CI only GPU/TensorRT skips pass",
        "tests/skip_guard.py",
        'EXPECTED_SKIPS = (\n    r"needs a CUDA GPU",',
        'EXPECTED_SKIPS = (\n    r".",\n    r"needs a CUDA GPU",',
        ("tests/test_skip_guard.py",),
    ),
)


def run_one(mutation: Mutation) -> tuple[str, str]:
    """(outcome, detail): caught, survived or broken."""
    path = REPO / mutation.path
    original = path.read_text()
    if original.count(mutation.old) != 1:
        return "broken", f"{mutation.path}: the text to change is found {original.count(mutation.old)} times, not once"
    try:
        path.write_text(original.replace(mutation.old, mutation.new))
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        done = subprocess.run([*command, *mutation.tests], cwd=REPO, capture_output=True, text=True, timeout=600)
    finally:
        path.write_text(original)
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode == 1 and failed:
        return "caught", failed[0]
    if done.returncode == 0:
        return "survived", "the tests passed with the bug in place"
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return "broken", f"pytest exited {done.returncode}: {' | '.join(tail)}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the file being mutated is restored by run_one's finally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    names = [m.name for m in MUTATIONS]
    chosen = MUTATIONS
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        if unknown := [n for n in wanted if n not in names]:
            print(
                f"mutation-check: unknown mutation(s) {', '.join(unknown)}; valid: {', '.join(names)}", file=sys.stderr
            )
            return 2
        chosen = tuple(m for m in MUTATIONS if m.name in wanted)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.promise} ({m.path}; {' '.join(m.tests)})")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    bad = 0
    start = time.monotonic()
    for m in chosen:
        t0 = time.monotonic()
        outcome, detail = run_one(m)
        bad += outcome != "caught"
        print(f"[{outcome}] {m.name} ({time.monotonic() - t0:.0f} s): {m.promise}: {detail}", flush=True)
    print(
        f"mutation-check: {len(chosen) - bad} of {len(chosen)} mutations caught in {time.monotonic() - start:.0f} s",
        flush=True,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
