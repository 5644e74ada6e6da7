"""`generate`: the synthetic population, chunk by chunk, written to one file per table."""

from __future__ import annotations

import contextlib
import ctypes
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from allpayer.errors import AllpayerError
from allpayer.synth import inject as inj
from allpayer.synth import payer_files
from allpayer.synth.claims import assemble, generate_parts
from allpayer.synth.clinical import generate_clinical
from allpayer.synth.context import Ctx
from allpayer.synth.pharmacy import generate_pharmacy
from allpayer.synth.population import long_stay_residents, make_people, make_segments
from allpayer.synth.roster import PHARMACIES_PER_HSA, RosterOptions, build_roster
from allpayer.synth.span import DEFAULT_YEARS, Span
from allpayer.synth.tables import (
    ChunkIds,
    eligibility_table,
    employer_group_table,
    lab_result_table,
    medical_claim_table,
    observation_table,
    pharmacy_claim_table,
)
from allpayer.synth.writer import FORMATS, TableWriter

GENERATOR_VERSION = "1.2.0"
"""Bump when the same seed would give different data."""
CHUNK_SIZE = 50_000
"""People per chunk. Part of what a seed means: the same seed with another chunk size gives
different (equally valid) data."""
MAX_MEMBERS = 10_000_000
TABLE_ORDER = (
    "eligibility",
    "medical_claim",
    "pharmacy_claim",
    "lab_result",
    "observation",
    "provider_roster",
    "employer_group",
    "payer_attribution",
    "voluntary_alignment",
    "exclusion_event",
    "payer_target",
)
INJECTED_ERRORS_FILE = "injected_errors.csv"
MANIFEST_FILE = "manifest.json"

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


@contextlib.contextmanager
def _allocation_tuning():
    """Make the per-chunk allocation of large arrays cheap, and undo it afterwards.

    Every chunk allocates and frees a few hundred megabytes of arrays. On Linux, glibc returns
    freed blocks to the system and maps fresh pages for the next chunk, and numpy asks for
    transparent huge pages, whose allocation can stall on memory compaction; measured on the
    development machine, both together cost about a quarter of the run's CPU time. During a
    generation, freed memory is kept for reuse (mallopt) and huge pages are not requested; both
    settings are restored, and the kept memory released, when the generation ends.
    """
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        except (OSError, AttributeError):
            libc = None
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    previous = None
    if setter is not None:
        try:
            previous = setter(False)
        except Exception:  # pragma: no cover - numpy without the switch
            setter = None
    try:
        yield
    finally:
        if setter is not None and previous is not None:
            setter(bool(previous))
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.malloc_trim(0)


Progress = Callable[[int, int], None]
"""Called as progress(people_done, people_total) after each chunk."""


@dataclass
class Manifest:
    """What a generation produced: enough to reproduce it and to check a load against it."""

    generator_version: str
    seed: int
    members: int
    years: list[int]
    service_start: str
    service_end: str
    paid_through: str
    format: str
    chunk_size: int
    dhmc_fpp: bool
    files: dict[str, str]
    row_counts: dict[str, int]
    inject_errors: float = 0.0
    typed_columns: bool = True
    injected_errors: dict[str, dict[str, int]] = field(default_factory=dict)
    injected_errors_file: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        return cls(**json.loads(Path(path).read_text()))


def check_args(members: int, seed: int, fmt: str = "parquet", years=DEFAULT_YEARS, inject_errors: float = 0.0,
               chunk_size: int = CHUNK_SIZE) -> Span:
    """Validate the arguments of `generate`; returns the span. Raises AllpayerError."""
    if not isinstance(members, (int, np.integer)) or members < 1:
        raise AllpayerError(f"--members must be a positive whole number, got {members}")
    if members > MAX_MEMBERS:
        raise AllpayerError(f"--members must be at most {MAX_MEMBERS:,}, got {members:,}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AllpayerError(f"--seed must be a whole number >= 0, got {seed}")
    if fmt not in FORMATS:
        raise AllpayerError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not (0.0 <= float(inject_errors) <= 0.5):
        raise AllpayerError(f"--inject-errors must be a share between 0 and 0.5, got {inject_errors}")
    if chunk_size < 1:
        raise AllpayerError("chunk size must be positive")
    return Span.of(years)


def _prepare(out: Path, fmt: str) -> None:
    if out.exists() and not out.is_dir():
        raise AllpayerError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    # files of an earlier generation in the other format would be read together with these
    for name in TABLE_ORDER:
        for other in FORMATS:
            p = out / f"{name}.{other}"
            if other != fmt and p.is_file():
                p.unlink()
    stale = out / INJECTED_ERRORS_FILE
    if stale.exists():
        stale.unlink()


def generate(
    members: int,
    seed: int,
    out: Path,
    fmt: str = "parquet",
    years=DEFAULT_YEARS,
    inject_errors: float = 0.0,
    progress: Progress | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    roster_options: RosterOptions = RosterOptions(),
) -> Manifest:
    """Generate a synthetic Vermont-like population of `members` people into the folder `out`.

    The same arguments always give byte-identical files. Returns the manifest (also written to
    `out/manifest.json`).
    """
    span = check_args(members, seed, fmt, years, inject_errors, chunk_size)
    out = Path(out)
    _prepare(out, fmt)
    with _allocation_tuning():
        manifest = _generate(members, seed, out, fmt, span, inject_errors, progress, chunk_size, roster_options)
    (out / MANIFEST_FILE).write_text(manifest.to_json())
    return manifest


def _generate(members, seed, out: Path, fmt, span: Span, inject_errors, progress, chunk_size, roster_options) -> Manifest:
    """The generation itself (arguments already checked): chunks, then the network tables."""
    root = np.random.SeedSequence(int(seed))
    roster_ss, inject_ss, chunks_ss = root.spawn(3)
    n_chunks = (int(members) + chunk_size - 1) // chunk_size
    chunk_seeds = chunks_ss.spawn(n_chunks)
    payer_seeds = root.spawn(1)[0].spawn(n_chunks)
    long_stay_seeds = root.spawn(1)[0].spawn(n_chunks)  # spawned last: the earlier streams stay as they were
    inject_seeds = inject_ss.spawn(n_chunks + 1)
    roster = build_roster(roster_ss, roster_options, first_day=span.start)
    text = inject_errors > 0
    writers = {name: TableWriter(out, name, fmt) for name in TABLE_ORDER}
    rows_out = {name: 0 for name in TABLE_ORDER}
    injected: list[tuple[str, int, str, str]] = []

    def emit(name: str, table: pa.Table, rng: np.random.Generator) -> None:
        if text:
            table = inj.as_text(table, name)
            table, report = inj.inject(table, name, float(inject_errors), rng, rows_out[name])
            injected.extend((name, row, kind, col) for row, kind, col in report)
        rows_out[name] += table.num_rows
        writers[name].write(table)

    try:
        for k in range(n_chunks):
            size = min(chunk_size, int(members) - k * chunk_size)
            rng = np.random.Generator(np.random.PCG64(chunk_seeds[k]))
            irng = np.random.Generator(np.random.PCG64(inject_seeds[k]))
            people = make_people(rng, k * chunk_size, size, span, roster)
            segs = make_segments(rng, people, span)
            people.long_stay = long_stay_residents(np.random.Generator(np.random.PCG64(long_stay_seeds[k])), people)
            ctx = Ctx.build(rng, people, segs, span, roster)
            lines = assemble(ctx, generate_parts(ctx))
            rx = generate_pharmacy(ctx, PHARMACIES_PER_HSA)
            labs, obs = generate_clinical(ctx, lines)
            cid = ChunkIds(ctx)
            emit("eligibility", eligibility_table(ctx, cid), irng)
            emit("medical_claim", medical_claim_table(ctx, cid, lines, k), irng)
            emit("pharmacy_claim", pharmacy_claim_table(ctx, cid, rx, k), irng)
            emit("lab_result", lab_result_table(ctx, cid, labs, k), irng)
            emit("observation", observation_table(ctx, cid, obs, k), irng)
            prng = np.random.Generator(np.random.PCG64(payer_seeds[k]))
            emit("payer_attribution", payer_files.payer_attribution_table(ctx, cid, prng), irng)
            emit("voluntary_alignment", payer_files.voluntary_alignment_table(ctx, cid, prng), irng)
            emit("exclusion_event", payer_files.exclusion_event_table(ctx, cid, prng), irng)
            del lines, rx, labs, obs, ctx, people, segs, cid
            if progress is not None:
                progress(min((k + 1) * chunk_size, int(members)), int(members))
        irng = np.random.Generator(np.random.PCG64(inject_seeds[n_chunks]))
        emit("provider_roster", roster.table, irng)
        emit("employer_group", employer_group_table(), irng)
        emit("payer_target", payer_files.payer_target_table(span.years), irng)
        paths = {name: w.close().name for name, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise

    counts: dict[str, dict[str, int]] = {}
    for name, _, kind, _ in injected:
        counts.setdefault(name, {k: 0 for k in inj.KINDS})
        counts[name][kind] += 1
    manifest = Manifest(
        generator_version=GENERATOR_VERSION,
        seed=int(seed),
        members=int(members),
        years=list(span.years),
        service_start=span.start.isoformat(),
        service_end=span.end.isoformat(),
        paid_through=span.paid_through.isoformat(),
        format=fmt,
        chunk_size=int(chunk_size),
        dhmc_fpp=roster_options.dhmc_fpp,
        files=paths,
        row_counts={name: w.rows for name, w in writers.items()},
        inject_errors=float(inject_errors),
        typed_columns=not text,
        injected_errors=counts,
        injected_errors_file=INJECTED_ERRORS_FILE if text else None,
        notes=[
            "members counts people (person_id); a person has one member_id per coverage",
            "each conflicting_duplicate_line row is an extra copy of a valid row with the same key",
        ] if text else ["members counts people (person_id); a person has one member_id per coverage"],
    )
    if text:
        _write_injected(out / INJECTED_ERRORS_FILE, injected)
    return manifest


def _write_injected(path: Path, rows: list[tuple[str, int, str, str]]) -> None:
    table = pa.table({
        "table": pa.array([r[0] for r in rows], pa.string()),
        "row_number": pa.array([r[1] for r in rows], pa.int64()),
        "kind": pa.array([r[2] for r in rows], pa.string()),
        "column": pa.array([r[3] for r in rows], pa.string()),
    })
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))
