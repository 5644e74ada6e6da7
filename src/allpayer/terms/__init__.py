"""Contract terms: typed, dated parameters of each payer program, loaded from YAML.

>>> from allpayer.terms import load_programs, programs_dir
>>> [p.program_id for p in load_programs([programs_dir() / "vermont" / "2022"])]
['vt-2022-bcbsvt-qhp', 'vt-2022-medicaid', 'vt-2022-medicare', 'vt-2022-mvp-qhp', 'vt-2022-sov-employees', 'vt-2022-uvmmc-employees']

See `docs/terms.md` for the file format and `allpayer.terms.models` for the models.
"""

from allpayer.terms.dated import Dated, Entry, Noted, Reference
from allpayer.terms.loader import (
    CheckResult,
    check_files,
    load_program,
    load_programs,
    parse_program,
    programs_dir,
    terms_files,
)
from allpayer.terms.models import ProgramTerms

__all__ = [
    "ProgramTerms",
    "Dated",
    "Noted",
    "Entry",
    "Reference",
    "load_program",
    "load_programs",
    "parse_program",
    "programs_dir",
    "terms_files",
    "check_files",
    "CheckResult",
]
