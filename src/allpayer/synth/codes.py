"""Fixed code dictionaries shared by every chunk of one generation.

Each dictionary maps a code string to a small integer so that claim lines can be built as integer
arrays and written as Arrow dictionary arrays.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from allpayer.synth import reference as ref


class Vocabulary:
    """An ordered, fixed list of codes with their indices."""

    def __init__(self, codes) -> None:
        seen: dict[str, int] = {}
        for c in codes:
            if c not in seen:
                seen[c] = len(seen)
        self.codes = list(seen)
        self.index = seen
        self.arrow = pa.array(self.codes, pa.string())

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, code: str) -> int:
        return self.index[code]

    def arr(self, codes) -> np.ndarray:
        return np.array([self.index[c] for c in codes], dtype=np.int32)

    def dictionary(self, idx: np.ndarray) -> pa.DictionaryArray:
        """A dictionary array over this vocabulary; negative indices are nulls."""
        idx = np.asarray(idx, dtype=np.int32)
        mask = idx < 0
        indices = pa.array(np.where(mask, 0, idx), pa.int32(), mask=mask if mask.any() else None)
        return pa.DictionaryArray.from_arrays(indices, self.arrow)


def _icd_codes() -> list[str]:
    out: list[str] = []
    for c in ref.CONDITIONS:
        out += [x for x, _ in c.codes]
    out += [x for x, _ in ref.CANCER_MALE_CODES + ref.CANCER_FEMALE_CODES]
    out += ["E1122", "N186"]
    for lst in (ref.ACUTE_OFFICE_DX, ref.ED_DX, ref.MH_ED_DX, ref.SUD_ED_DX):
        out += [x for x, _ in lst]
    out += [d.dx for d in ref.DRGS.values()]
    out += [ref.PREVENTIVE_DX_ADULT, ref.PREVENTIVE_DX_CHILD, "Z0001", "Z00121", ref.SCREENING_COLONOSCOPY_DX,
            ref.SCREENING_MAMMOGRAPHY_DX, ref.PREGNANCY_DX, ref.DIALYSIS_DX, ref.CATARACT_DX, "Z23", "R531"]
    from allpayer.synth.coding import MEDICARE_CODES

    out += list(MEDICARE_CODES)
    return out


ICD = Vocabulary(_icd_codes())
HCPCS = Vocabulary(list(ref.PROF_PRICE) + list(ref.ED_FACILITY_PRICE) + ["99460", "00790", "96365"])
REVENUE = Vocabulary(
    list(ref.FACILITY_REVENUE_PRICE) + list(ref.INPATIENT_REVENUE_CHARGE) + ["0450", "0521", "0821", "0022", "0335", "0771"]
)
POS = Vocabulary(["11", "02", "10", "12", "21", "22", "23", "24", "41", "81"])
BILL_TYPE = Vocabulary(["111", "131", "711", "771", "211", "721"])
MODIFIER = Vocabulary(["26", "TC", "25", "95", "RT", "LT"])
DRG = Vocabulary(list(ref.DRGS))
ADMIT_SOURCE = Vocabulary(["1", "2", "4", "5"])
ADMIT_TYPE = Vocabulary(["1", "2", "3", "4"])
DISCHARGE = Vocabulary(["01", "02", "03", "06", "07", "20"])
POA = Vocabulary(["Y", "N", "U", "W"])
CLAIM_TYPES = ("professional", "institutional", "dme")

PROF_PRICE_ARR = np.array([ref.PROF_PRICE.get(c, 0.0) for c in HCPCS.codes]) 
PROF_PRICE_ARR[HCPCS["99460"]] = 110.0
PROF_PRICE_ARR[HCPCS["00790"]] = 320.0
PROF_PRICE_ARR[HCPCS["96365"]] = 75.0
ED_FAC_PRICE_ARR = np.array([ref.ED_FACILITY_PRICE.get(c, 0.0) for c in HCPCS.codes])
REV_PRICE_ARR = np.array([ref.FACILITY_REVENUE_PRICE.get(c, 0.0) for c in REVENUE.codes])
REV_PRICE_ARR[REVENUE["0335"]] = 300.0
REV_CHARGE_ARR = np.array([ref.INPATIENT_REVENUE_CHARGE.get(c, 200.0) for c in REVENUE.codes])
DRG_WEIGHT = np.array([ref.DRGS[c].weight for c in DRG.codes])
DRG_ALOS = np.array([ref.DRGS[c].alos for c in DRG.codes])
DRG_DX = ICD.arr([ref.DRGS[c].dx for c in DRG.codes])
DRG_SURGICAL = np.array([ref.DRGS[c].surgical for c in DRG.codes])
DRG_PROC = np.array([HCPCS[ref.DRGS[c].procedure] if ref.DRGS[c].procedure else -1 for c in DRG.codes], dtype=np.int32)
