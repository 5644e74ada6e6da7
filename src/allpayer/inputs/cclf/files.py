"""CCLF file names, monthly zips and deliveries.

CMS names each file ``<env>.<ACO>.ACO.ZC<t><k><yy>.D<yymmdd>.T<hhmmss><n>``:

- ``env``: ``P`` production, ``T`` test;
- ``ACO``: the ACO id (``A1234``);
- ``t``: the file type (``0``-``9``, ``A``, ``B``);
- ``k``: ``Y`` a monthly file of the performance year ``yy``, ``R`` a run-out file of ``yy``;
- ``D``/``T``: the date and time the file was made.

A monthly zip carries the files of one delivery and is named the same way without the file type
(``P.A1234.ACO.ZCY24.D240315.T0102030.zip``). A delivery is the set of files with the same
environment, ACO, kind, year and date. Test files are skipped unless asked for; files that do not
match the pattern are listed as ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from allpayer.errors import InputFileError

FILE_RE = re.compile(
    r"^(?P<env>[PT])\.(?P<aco>[A-Z0-9]{4,6})\.ACO\.ZC(?P<type>[0-9AB])(?P<kind>[YR])(?P<yy>\d{2})"
    r"\.D(?P<date>\d{6})\.T(?P<time>\d{6,7})(?:\.txt)?$",
    re.IGNORECASE,
)
ZIP_RE = re.compile(
    r"^(?P<env>[PT])\.(?P<aco>[A-Z0-9]{4,6})\.ACO\.ZC(?P<kind>[YR])(?P<yy>\d{2})"
    r"\.D(?P<date>\d{6})\.T(?P<time>\d{6,7})\.zip$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CclfFile:
    """One CCLF file of a delivery."""

    path: Path  # where its bytes are (extracted from a zip when it came in one)
    relpath: str  # recorded as `source_file`: relative to the folder, "zip/member" for zipped files
    file_type: str  # CCLF0 ... CCLFB
    env: str
    aco: str
    kind: str  # Y (monthly) or R (run-out)
    performance_year: int
    file_date: dt.date

    @property
    def delivery(self) -> tuple:
        return (self.env, self.aco, self.kind, self.performance_year, self.file_date)


@dataclass
class Found:
    files: list[CclfFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def file_name(file_type: str, aco: str, performance_year: int, file_date: dt.date, *, env: str = "P", kind: str = "Y", time: str = "0000000") -> str:
    """The CMS name of one CCLF file (the inverse of `parse_name`)."""
    t = file_type[-1]
    return f"{env}.{aco}.ACO.ZC{t}{kind}{performance_year % 100:02d}.D{file_date:%y%m%d}.T{time}"


def zip_name(aco: str, performance_year: int, file_date: dt.date, *, env: str = "P", kind: str = "Y", time: str = "0000000") -> str:
    return f"{env}.{aco}.ACO.ZC{kind}{performance_year % 100:02d}.D{file_date:%y%m%d}.T{time}.zip"


def _date(text: str, where: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%y%m%d").date()
    except ValueError:
        raise InputFileError(where, f"the file name's date D{text} is not a date (expected DYYMMDD)") from None


def parse_name(name: str, path: Path, relpath: str) -> CclfFile | None:
    m = FILE_RE.match(name)
    if not m:
        return None
    return CclfFile(
        path=path,
        relpath=relpath,
        file_type="CCLF" + m["type"].upper(),
        env=m["env"].upper(),
        aco=m["aco"].upper(),
        kind=m["kind"].upper(),
        performance_year=2000 + int(m["yy"]),
        file_date=_date(m["date"], relpath),
    )


def discover(folder: str | Path, work: Path, *, include_test: bool = False) -> Found:
    """Find the CCLF files in `folder` (and in the monthly zips there, extracted under `work`)."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(str(folder), "folder not found")
    if not folder.is_dir():
        raise InputFileError(str(folder), "not a folder: expected a folder of CCLF files or monthly CCLF zips")
    found = Found()
    for entry in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = entry.relative_to(folder).as_posix()
        if entry.name.lower().endswith(".zip"):
            if not ZIP_RE.match(entry.name):
                found.ignored.append(rel)
                continue
            try:
                with zipfile.ZipFile(entry) as z:
                    members = [i for i in z.infolist() if not i.is_dir()]
                    target = work / entry.name
                    for info in members:
                        member = Path(info.filename).name
                        f = parse_name(member, target / member, f"{rel}/{member}")
                        if f is None:
                            found.ignored.append(f"{rel}/{info.filename}")
                            continue
                        if f.env == "T" and not include_test:
                            found.ignored.append(f"{rel}/{info.filename} (test file)")
                            continue
                        target.mkdir(parents=True, exist_ok=True)
                        with z.open(info) as src, open(target / member, "wb") as dst:
                            while chunk := src.read(1 << 24):
                                dst.write(chunk)
                        found.files.append(f)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputFileError(str(entry), f"not a readable zip file ({exc})") from exc
            continue
        f = parse_name(entry.name, entry, rel)
        if f is None:
            found.ignored.append(rel)
        elif f.env == "T" and not include_test:
            found.ignored.append(f"{rel} (test file)")
        else:
            found.files.append(f)
    seen: dict[tuple, str] = {}
    for f in found.files:
        key = (*f.delivery, f.file_type)
        if key in seen:
            raise InputFileError(f.relpath, f"{f.file_type} of the delivery of {f.file_date} is delivered twice (also {seen[key]})")
        seen[key] = f.relpath
    if not found.files:
        raise InputFileError(str(folder), "no CCLF files: expected files named like P.A1234.ACO.ZC1Y24.D240315.T1234567 or their monthly zips")
    return found
