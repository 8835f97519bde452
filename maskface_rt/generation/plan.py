"""A generate run's plan, made before any work: the options and their limits, the masks found, each mask's
outputs and the ones still to make (existing complete PNGs are kept), the reference photos.

Shared by the local run (``pipeline``) and ``maskface generate --ray`` (``distributed``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskface_rt.errors import MaskfaceError, OptionError, printable
from maskface_rt.fileio import SPECIAL_FILES, check_writable, remove_stale_temps, what_is_there
from maskface_rt.image_io import read_rgb
from maskface_rt.mask_io import MaskSource, check_input, check_label_order, discover_masks
from maskface_rt.values import Limit, limit_problems


@dataclass
class GenerateOptions:
    """What ``maskface generate`` makes and where (one field per CLI option)."""

    out: Path
    styles: int = 4  # style indices k = 0..styles-1 (ignored when references are given)
    seed: int = 0
    batch_size: int = 8
    references: tuple[Path, ...] = ()  # style from photos, through backend.encode_style
    label_order: str = "celebamask"
    recursive: bool = False
    grid: bool = False  # contact sheet(s): mask | its faces, one row per mask
    overwrite: bool = False
    workers: int = 2  # decode / encode threads


@dataclass
class Skipped:
    """An input left out of the run, and why (one line)."""

    path: str
    reason: str

    def __str__(self) -> str:
        """``<path>: <reason>`` on one line, whatever characters the file name holds."""
        return f"{printable(self.path)}: {printable(self.reason)}"


@dataclass
class MaskPlan:
    """One mask's outputs: all of them (for the grid) and the style indices still to make."""

    source: MaskSource
    outputs: list[Path]  # index = style index (seed styles) or reference number
    missing: list[int] = field(default_factory=list)
    replace: set[int] = field(default_factory=set)  # missing outputs whose existing file is not a complete PNG
    problem: Skipped | None = None  # set when the mask is skipped
    written: list[int] = field(default_factory=list)  # style indices this run wrote, in order
    raced: int = 0  # missing outputs another process (or an earlier try) wrote first

    @property
    def needs_work(self) -> bool:
        """Whether some output is missing and the mask is not skipped."""
        return bool(self.missing) and self.problem is None

    def skip(self, reason: str, path: str | None = None) -> None:
        """Give up on this mask, keeping its first problem."""
        if self.problem is None:
            self.problem = Skipped(path or str(self.source.path), reason)


@dataclass
class Planned:
    """A run's plan, made before any work: every mask's outputs and the ones still to make."""

    out: Path
    sources: list[MaskSource]
    plans: list[MaskPlan]
    references: list[tuple[str, np.ndarray]]

    @property
    def to_make(self) -> list[MaskPlan]:
        return [p for p in self.plans if p.needs_work]

    @property
    def todo(self) -> int:
        """Images to make."""
        return sum(len(p.missing) for p in self.to_make)

    def prepare_output(self, grid: bool = False) -> None:
        """Create OUT when there is something to write, check it is writable, remove stale temps."""
        if self.todo or (grid and any(not p.problem for p in self.plans)):
            _make_folder(self.out)
            check_writable(self.out)
            remove_stale_temps(self.out)


def plan_run(mask_dir: Path, opts: GenerateOptions) -> Planned:
    """Check the options, references and masks (MaskfaceError; nothing written), and plan the outputs."""
    mask_dir, out = Path(mask_dir), Path(opts.out)
    _check_options(opts, mask_dir)
    references = read_references(opts.references)
    sources = discover_masks(mask_dir, recursive=opts.recursive)
    return Planned(out, sources, plan_masks(sources, opts), references)


def plan_masks(sources: Sequence[MaskSource], opts: GenerateOptions) -> list[MaskPlan]:
    """Each mask's outputs under opts.out and the ones still to make (existing complete PNGs are kept)."""
    return _plan(sources, _output_suffixes(opts), Path(opts.out), opts.overwrite)


#: Upper limits of the numeric options (the plan holds masks x styles output names in memory).
MAX_STYLES = 1000
MAX_BATCH_SIZE = 1024
MAX_WORKERS = 64
LIMITS = {
    "styles": Limit(1, MAX_STYLES),
    "batch_size": Limit(1, MAX_BATCH_SIZE),
    "workers": Limit(1, MAX_WORKERS),
    "seed": Limit(0, 2**63 - 1),
}


def options_problem(opts: GenerateOptions) -> OptionError | None:
    """The first option value out of its range, as an error naming the option and the valid range (None: none).

    Checked by the CLI before the model is loaded (a usage error, exit 2) and again by run_generate.
    """
    found = limit_problems(opts, LIMITS)
    return OptionError(*found[0]) if found else None


def _check_options(opts: GenerateOptions, mask_dir: Path) -> None:
    """Refuse bad option values and an output folder that cannot work, before anything is written."""
    if problem := options_problem(opts):
        raise problem
    check_label_order(opts.label_order)
    check_input(mask_dir)
    out = Path(opts.out)
    found = what_is_there(out, missing="")
    if found in ("file", *SPECIAL_FILES):
        raise MaskfaceError(out, f"the output folder exists and is a {found}, not a folder")
    if found not in ("folder", ""):
        raise MaskfaceError(out, f"cannot be the output folder: {found}")
    if mask_dir.is_dir():
        masks, target = mask_dir.resolve(), out.resolve()
        if target == masks or (opts.recursive and masks in target.parents):
            raise MaskfaceError(
                out,
                f"the output folder is inside the mask folder {mask_dir}, so the faces "
                "would be read as masks next time; choose a folder outside it",
            )


def read_references(paths: Sequence[Path]) -> list[tuple[str, np.ndarray]]:
    """(stem, uint8 RGB photo) of each reference; stems name the outputs, so they must be unique."""
    seen: dict[str, Path] = {}
    photos = []
    for path in map(Path, paths):
        if path.stem in seen:
            raise MaskfaceError(
                path,
                f"has the same name {path.stem!r} as reference {seen[path.stem]}; "
                "output names must be unique, rename one of them",
            )
        seen[path.stem] = path
        photos.append((path.stem, read_rgb(path)))
    return photos


def _output_suffixes(opts: GenerateOptions) -> list[str]:
    """File name endings of one mask's outputs, in style order."""
    if opts.references:
        return [f"_ref-{Path(p).stem}.png" for p in opts.references]
    return [f"_s{k}.png" for k in range(opts.styles)]


def _plan(sources: Sequence[MaskSource], suffixes: Sequence[str], out: Path, overwrite: bool) -> list[MaskPlan]:
    """Each mask's outputs and the ones still to make; a mask with a folder (or other non-file) in the
    way of an output is skipped."""
    plans, names = [], set()
    for source in sources:
        plan = MaskPlan(source, [out / f"{source.name}{suffix}" for suffix in suffixes])
        for k, path in enumerate(plan.outputs):
            if path.name in names:  # only with contrived mask / reference names, e.g. "a_ref-b" + "c"
                raise MaskfaceError(
                    source.path,
                    f"output name {path.name} is also the output of another mask; rename the mask or the reference",
                )
            names.add(path.name)
            is_file = path.is_file()
            if overwrite or not is_file or not complete_png(path):
                plan.missing.append(k)
                if is_file and not overwrite:
                    plan.replace.add(k)
                if not is_file and os.path.lexists(path):
                    plan.skip(f"{path} is in the way: it exists but is not a file")
        plans.append(plan)
    return plans


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC


def complete_png(path: Path) -> bool:
    """Whether a file starts and ends like a whole PNG (what resume trusts: not a pixel-by-pixel check)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
            if f.seek(0, os.SEEK_END) < len(_PNG_SIGNATURE) + len(_PNG_END):
                return False
            f.seek(-len(_PNG_END), os.SEEK_END)
            return head == _PNG_SIGNATURE and f.read() == _PNG_END
    except OSError:
        return False


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MaskfaceError(out, f"cannot create the output folder ({e.strerror or e})") from None
