"""FHIR R4 bulk data (NDJSON) -> the input contract. See `allpayer.inputs.fhir.reader` and docs/fhir.md."""

from allpayer.inputs.fhir.elements import COLUMN_EXTENSION, PART2_SECURITY
from allpayer.inputs.fhir.reader import read_fhir_folder

__all__ = ["COLUMN_EXTENSION", "PART2_SECURITY", "read_fhir_folder"]
