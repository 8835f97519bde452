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

from maskface_rt.backends.trt import compat
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import graph_file
from maskface_rt.kernels.onnx_op import OP_TYPE

PLUGIN_NOT_FOUND = "Plugin not found"


class OnnxParseError(MaskfaceError):
    """TensorRT's ONNX parser refused a graph; ``node_errors`` holds one line per error (node name, operator)."""

    def __init__(self, where: str | Path, node_errors: list[str], label: str = "TensorRT") -> None:
        self.node_errors = node_errors
        first = node_errors[0] if node_errors else "no error reported"
        more = f" (and {len(node_errors) - 1} more)" if len(node_errors) > 1 else ""
        super().__init__(where, f"{label}'s ONNX parser failed: {first}{more}")


def format_parser_error(node: int, name: str, operator: str, description: str) -> str:
    """One parser error as a line: which node (index, name, operator) and what is wrong."""
    description = " ".join(str(description).split())
    if node < 0:
        return description
    label = f"node {node}" + (f" {name!r}" if name else "") + (f" ({operator})" if operator else "")
    return f"{label}: {description}"


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


Parser = tuple[compat.TensorRTRuntime, ModuleType]


def _parser(parser: Parser) -> tuple[Any, Any, Any]:
    """(logger, parser, builder and network to keep alive while it parses): a strongly typed network's parser."""
    runtime, trt = parser
    logger = compat.make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(runtime.network_flags(trt, plugin=False))
    return logger, trt.OnnxParser(network, logger), (builder, network)


def find_parser() -> tuple[Parser | None, str]:
    """((runtime, module), '') of the first runtime of ``compat.RUNTIMES`` whose parser can be made
    here, or (None, why not)."""
    reasons = []
    for runtime in compat.RUNTIMES.values():
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
    return compat.parser_errors(onnx_parser) or [
        (-1, "", "", compat.logged_error(logger) or "the parser refused the graph and reported no error")
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
