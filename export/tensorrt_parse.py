"""TensorRT's own ONNX parser on each exported graph, where ``tensorrt`` or ``tensorrt_rtx`` is importable.

The parser (onnx-tensorrt, the same code in TensorRT 10/11 and TensorRT-RTX) needs no build, but it parses
into a network made by a Builder: TensorRT-RTX makes one on any machine, the CPU included; TensorRT 10/11 needs
a GPU for it (CUDA initialisation), so without one the check moves on to TensorRT-RTX, or is not run. Every graph must parse into a strongly typed network. A plugin generator's
FusedAdaIN nodes are unknown to a parser without the plugin loaded (TensorRT-RTX has no plugin API at
all): "Plugin not found" on those nodes is the one complaint accepted, and since the parser stops before
importing any node once one is refused, the portable twin of that generator is parsed as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from maskface_rt.export.engine_builder import OnnxParseError, format_parser_error
from maskface_rt.kernels.onnx_op import OP_TYPE

from maskface_rt import tensorrt_compat
from maskface_rt.export_format import graph_file

PLUGIN_NOT_FOUND = "Plugin not found"


@dataclass
class ParseCheck:
    """Whether TensorRT's parser ran, which runtime it was, and what it said of each graph."""

    runtime: str | None = None
    version: str | None = None
    graphs: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None  # why it did not run

    @property
    def ran(self) -> bool:
        return self.runtime is not None

    def line(self) -> str:
        if not self.ran:
            return f"TensorRT parse check: not run ({self.skipped})"
        graphs = "; ".join(f"{graph}: {verdict}" for graph, verdict in self.graphs.items())
        return f"TensorRT parse check ({self.runtime} {self.version}, strongly typed): {graphs}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "runtime": self.runtime,
            "version": self.version,
            "graphs": self.graphs,
            "skipped": self.skipped,
        }


Parser = tuple[tensorrt_compat.TensorRTRuntime, ModuleType]


def _parser(parser: Parser) -> tuple[Any, Any, Any]:
    """(logger, parser, builder and network to keep alive while it parses): a strongly typed network's parser."""
    runtime, trt = parser
    logger = tensorrt_compat.make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(runtime.network_flags(trt, plugin=False))
    return logger, trt.OnnxParser(network, logger), (builder, network)


def find_parser() -> tuple[Parser | None, str]:
    """((runtime, module), '') of the first runtime of ``tensorrt_compat.RUNTIMES`` whose parser can be made
    here, or (None, why not)."""
    reasons = []
    for runtime in tensorrt_compat.RUNTIMES.values():
        if not runtime.installed:
            reasons.append(f"{runtime.module} is not installed")
            continue
        try:
            parser = (runtime, runtime.load())
            _parser(parser)
        except Exception as e:  # noqa: BLE001 -- a broken install or TensorRT without a GPU: try the next one
            reasons.append(f"{runtime.module} could not make a parser ({' '.join(str(e).split()) or type(e).__name__})")
            continue
        return parser, ""
    return None, "; ".join(reasons)


def parse_errors(parser: Parser, path: Path) -> list[tuple[int, str, str, str]]:
    """(node index, name, operator, description) of each error the parser reports on ``path`` ([]: parsed)."""
    logger, onnx_parser, _alive = _parser(parser)
    if onnx_parser.parse_from_file(str(path)):
        return []
    return tensorrt_compat.parser_errors(onnx_parser) or [
        (-1, "", "", tensorrt_compat.logged_error(logger) or "the parser refused the graph and reported no error")
    ]


def check_graph(parser: Parser, path: Path, where: str, *, plugin: bool = False) -> str:
    """Parse one graph; the verdict, or OnnxParseError naming ``where`` and the first node refused.
    ``plugin``: "Plugin not found" on FusedAdaIN nodes is accepted (and only that)."""
    errors = parse_errors(parser, path)
    missing = [e for e in errors if plugin and e[2] == OP_TYPE and PLUGIN_NOT_FOUND in e[3]]
    refused = [e for e in errors if e not in missing]
    if refused:
        raise OnnxParseError(where, [format_parser_error(*e) for e in refused])
    if missing:
        return (
            f"parsed up to its {len(missing)} {OP_TYPE} nodes (plugin not loaded here; the only complaint), "
            "the rest checked on the portable twin"
        )
    return "parsed"


def check_export(
    folder: Path, graphs: tuple[str, ...], *, plugin: bool = False, portable_generator: Path | None = None
) -> ParseCheck:
    """Parse each ``folder/<graph>.onnx`` (and, for a plugin export, the portable twin of its generator)."""
    parser, why = find_parser()
    if parser is None:
        return ParseCheck(skipped=why)
    result = ParseCheck(runtime=parser[0].label, version=str(parser[1].__version__))
    for graph in graphs:
        path = folder / graph_file(graph)
        result.graphs[graph] = check_graph(parser, path, path.name, plugin=plugin and graph == "generator")
    if portable_generator is not None:
        result.graphs["generator_portable"] = check_graph(parser, portable_generator, "generator.onnx (portable twin)")
    return result
