"""Chunked, deterministic table writers (Parquet or CSV).

One file per table, written chunk by chunk (each chunk is one or more Parquet row groups), under a
temporary name that is renamed into place when the table is complete. Parquet settings are fixed
(zstd, dictionary encoding, statistics, no Arrow schema blob), so the same data gives the same
bytes; nothing time-dependent is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from allpayer.synth.tables import plain, written_schema

FORMATS = ("parquet", "csv")
ROW_GROUP_SIZE = 1_000_000
NO_DICTIONARY = frozenset({
    "claim_id", "lab_result_id", "observation_id", "accession_number", "encounter_id", "panel_id",
})
"""Columns with (nearly) one value per row: dictionary encoding only costs time there."""


class TableWriter:
    """Appends Arrow tables with one schema to `<dir>/<name>.<fmt>`."""

    def __init__(self, directory: Path, name: str, fmt: str):
        if fmt not in FORMATS:
            raise ValueError(fmt)
        self.name = name
        self.fmt = fmt
        self.path = Path(directory) / f"{name}.{fmt}"
        self.tmp = Path(directory) / f".{name}.{fmt}.partial"
        self.rows = 0
        self._writer = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(table)
        if self.fmt == "csv" or not self._keeps_dictionaries:
            table = plain(table)
        table = table.cast(self._schema)
        if self.fmt == "parquet":
            self._writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def _open(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            self._keeps_dictionaries = True
            self._schema = table.schema
            self._writer = pq.ParquetWriter(
                self.tmp,
                self._schema,
                compression="zstd",
                compression_level=1,
                use_dictionary=[f.name for f in self._schema if f.name not in NO_DICTIONARY],
                write_statistics=True,
                store_schema=False,
                version="2.6",
            )
        else:
            self._keeps_dictionaries = False
            self._schema = written_schema(table)
            self._writer = pacsv.CSVWriter(
                self.tmp, self._schema, write_options=pacsv.WriteOptions(include_header=True, quoting_style="needed")
            )

    def close(self) -> Path:
        if self._writer is None:
            raise RuntimeError(f"{self.name}: nothing was written")
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # pragma: no cover - best effort on an error path
                pass
        if self.tmp.exists():
            self.tmp.unlink()
