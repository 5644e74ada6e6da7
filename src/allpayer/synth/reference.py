"""Reference lists behind the synthetic Vermont-like population.

Geography (the 14 hospital service areas and their hospitals), clinical conditions with their
prevalence model and ICD-10-CM codes, procedure and revenue codes with Medicare-like prices,
DRGs with relative weights, drugs (NDC-format codes) and lab codes.

All numbers here are approximate and chosen for plausibility, not taken from a fee schedule:
prices are rough Medicare-level allowed amounts in dollars, DRG weights are close to recent MS-DRG
relative weights, CCNs, NPIs and NDCs are synthetic values in the real formats and ranges. The
HSA population weights approximate the 2020 census population of each HSA (Burlington largest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------
# Geography
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HSA:
    key: str
    name: str
    population: int
    zips: tuple[str, ...]
    rural: bool


HSAS: tuple[HSA, ...] = (
    HSA("barre", "Barre", 60_000, ("05641", "05602", "05663"), False),
    HSA("bennington", "Bennington", 37_000, ("05201", "05262", "05250"), False),
    HSA("brattleboro", "Brattleboro", 45_000, ("05301", "05346", "05353"), False),
    HSA("burlington", "Burlington", 165_000, ("05401", "05403", "05452", "05495", "05446"), False),
    HSA("middlebury", "Middlebury", 35_000, ("05753", "05491", "05443"), True),
    HSA("morrisville", "Morrisville", 28_000, ("05661", "05672", "05680"), True),
    HSA("newport", "Newport", 27_000, ("05855", "05830", "05857"), True),
    HSA("randolph", "Randolph", 17_000, ("05060", "05032", "05061"), True),
    HSA("rutland", "Rutland", 60_000, ("05701", "05763", "05743"), False),
    HSA("st_albans", "St. Albans", 55_000, ("05478", "05488", "05454"), False),
    HSA("st_johnsbury", "St. Johnsbury", 30_000, ("05819", "05851", "05821"), True),
    HSA("springfield", "Springfield", 24_000, ("05156", "05143", "05150"), True),
    HSA("upper_valley", "Upper Valley (White River Junction)", 40_000, ("05001", "05055", "05045"), True),
    HSA("windsor", "Windsor", 15_000, ("05089", "05037", "05048"), True),
)
HSA_INDEX = {h.key: i for i, h in enumerate(HSAS)}
OUT_OF_STATE = "out_of_state"


@dataclass(frozen=True)
class Hospital:
    key: str
    name: str
    hsa: str
    state: str
    ccn: str
    kind: str  # "tertiary", "pps", "cah", "oos"
    share_of_hsa: float
    """Share of the HSA's hospital use that goes to this hospital."""
    participating: bool = True


HOSPITALS: tuple[Hospital, ...] = (
    Hospital("cvmc", "Central Vermont Medical Center", "barre", "VT", "470001", "pps", 1.0),
    Hospital("svmc", "Southwestern Vermont Medical Center", "bennington", "VT", "470012", "pps", 1.0),
    Hospital("bmh", "Brattleboro Memorial Hospital", "brattleboro", "VT", "470011", "pps", 0.85),
    Hospital("grace_cottage", "Grace Cottage Hospital", "brattleboro", "VT", "471300", "cah", 0.15),
    Hospital("uvmmc", "University of Vermont Medical Center", "burlington", "VT", "470003", "tertiary", 1.0),
    Hospital("porter", "Porter Medical Center", "middlebury", "VT", "471307", "cah", 1.0),
    Hospital("copley", "Copley Hospital", "morrisville", "VT", "471305", "cah", 1.0),
    Hospital("north_country", "North Country Hospital", "newport", "VT", "471304", "cah", 1.0),
    Hospital("gifford", "Gifford Medical Center", "randolph", "VT", "471306", "cah", 1.0),
    Hospital("rrmc", "Rutland Regional Medical Center", "rutland", "VT", "470005", "pps", 1.0),
    Hospital("nmc", "Northwestern Medical Center", "st_albans", "VT", "470024", "pps", 1.0),
    Hospital("nvrh", "Northeastern Vermont Regional Hospital", "st_johnsbury", "VT", "471303", "cah", 1.0),
    Hospital("springfield", "Springfield Hospital", "springfield", "VT", "471301", "cah", 1.0),
    Hospital("dhmc", "Dartmouth-Hitchcock Medical Center", "upper_valley", "NH", "300003", "tertiary", 1.0),
    Hospital("mt_ascutney", "Mt. Ascutney Hospital", "windsor", "VT", "471302", "cah", 1.0),
    Hospital("mgh", "Massachusetts General Hospital", OUT_OF_STATE, "MA", "220071", "oos", 0.0, False),
    Hospital("albany_med", "Albany Medical Center", OUT_OF_STATE, "NY", "330013", "oos", 0.0, False),
)
HOSPITAL_INDEX = {h.key: i for i, h in enumerate(HOSPITALS)}

# Where complex care goes from each HSA (tertiary referral), and which out-of-state hospital
# residents use when they leave the network, with the share of admissions that leave.
TERTIARY_REFERRAL = {h.key: ("dhmc" if h.key in ("upper_valley", "windsor", "springfield", "randolph", "st_johnsbury") else "uvmmc") for h in HSAS}
OUT_OF_NETWORK = {
    "bennington": ("albany_med", 0.10),
    "brattleboro": ("mgh", 0.07),
    "rutland": ("albany_med", 0.03),
    "springfield": ("mgh", 0.04),
}
OUT_OF_NETWORK_DEFAULT = ("mgh", 0.015)

# Price level of each hospital kind relative to a Medicare-like base (facility services).
HOSPITAL_PRICE_FACTOR = {"tertiary": 1.20, "pps": 1.00, "cah": 1.10, "oos": 1.35}

# ---------------------------------------------------------------------------------------------
# Clinician specialties (CMS provider specialty codes)
# ---------------------------------------------------------------------------------------------

SPECIALTIES: dict[str, tuple[str, str]] = {
    # key: (CMS specialty code, name)
    "family_practice": ("08", "Family Practice"),
    "internal_medicine": ("11", "Internal Medicine"),
    "pediatrics": ("37", "Pediatric Medicine"),
    "geriatrics": ("38", "Geriatric Medicine"),
    "nurse_practitioner": ("50", "Nurse Practitioner"),
    "physician_assistant": ("97", "Physician Assistant"),
    "clinical_nurse_specialist": ("89", "Clinical Nurse Specialist"),
    "cardiology": ("06", "Cardiovascular Disease (Cardiology)"),
    "endocrinology": ("46", "Endocrinology"),
    "psychiatry": ("26", "Psychiatry"),
    "pulmonology": ("29", "Pulmonary Disease"),
    "nephrology": ("39", "Nephrology"),
    "gastroenterology": ("10", "Gastroenterology"),
    "orthopedics": ("20", "Orthopedic Surgery"),
    "general_surgery": ("02", "General Surgery"),
    "obgyn": ("16", "Obstetrics & Gynecology"),
    "oncology": ("90", "Medical Oncology"),
    "neurology": ("13", "Neurology"),
    "dermatology": ("07", "Dermatology"),
    "ophthalmology": ("18", "Ophthalmology"),
    "rheumatology": ("66", "Rheumatology"),
    "emergency_medicine": ("93", "Emergency Medicine"),
    "radiology": ("30", "Diagnostic Radiology"),
    "anesthesiology": ("05", "Anesthesiology"),
    "hospitalist": ("11", "Internal Medicine"),
    "psychologist": ("62", "Psychologist, Clinical"),
    "social_worker": ("80", "Licensed Clinical Social Worker"),
    "addiction_medicine": ("79", "Addiction Medicine"),
    "physical_therapy": ("65", "Physical Therapist in Private Practice"),
}
PRIMARY_CARE_SPECIALTIES = (
    "family_practice",
    "internal_medicine",
    "pediatrics",
    "geriatrics",
    "nurse_practitioner",
    "physician_assistant",
    "clinical_nurse_specialist",
)

# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------

AGE_BANDS = np.array([0, 18, 45, 65, 75])
"""Lower bounds of the bands used by the prevalence table: 0-17, 18-44, 45-64, 65-74, 75+."""


@dataclass(frozen=True)
class Condition:
    key: str
    prevalence: tuple[float, float, float, float, float]
    """Prevalence by AGE_BANDS for a person of average health."""
    codes: tuple[tuple[str, float], ...]
    """ICD-10-CM codes (no dot) and the share of people with the condition coded that way."""
    medicaid_factor: float = 1.0
    female_factor: float = 1.0
    male_factor: float = 1.0
    chronic: bool = True
    """Counts toward the number of chronic conditions (visit frequency, FMC measure)."""


CONDITIONS: tuple[Condition, ...] = (
    Condition("diabetes", (0.003, 0.042, 0.135, 0.245, 0.275), (("E119", 0.50), ("E1165", 0.25), ("E1140", 0.15), ("E109", 0.10)), medicaid_factor=1.35),
    Condition("hypertension", (0.004, 0.08, 0.30, 0.52, 0.65), (("I10", 1.0),), medicaid_factor=1.15),
    Condition("hyperlipidemia", (0.004, 0.06, 0.25, 0.42, 0.45), (("E785", 0.7), ("E782", 0.3)), chronic=False),
    Condition("cad", (0.0, 0.003, 0.045, 0.11, 0.18), (("I2510", 1.0),), male_factor=1.4, female_factor=0.65),
    Condition("chf", (0.0, 0.002, 0.014, 0.055, 0.12), (("I5022", 0.4), ("I5032", 0.4), ("I509", 0.2)), medicaid_factor=1.4),
    Condition("copd", (0.0, 0.008, 0.055, 0.10, 0.12), (("J449", 0.85), ("J441", 0.15)), medicaid_factor=1.7),
    Condition("asthma", (0.075, 0.075, 0.075, 0.065, 0.055), (("J45909", 0.7), ("J4520", 0.3)), medicaid_factor=1.3),
    Condition("alcohol_use", (0.002, 0.025, 0.022, 0.010, 0.005), (("F1020", 0.6), ("F1010", 0.4)), medicaid_factor=2.2, male_factor=1.5, female_factor=0.6),
    Condition("opioid_use", (0.0005, 0.020, 0.010, 0.003, 0.001), (("F1120", 1.0),), medicaid_factor=3.5, male_factor=1.3, female_factor=0.8),
    Condition("depression", (0.035, 0.11, 0.11, 0.10, 0.10), (("F331", 0.45), ("F321", 0.35), ("F332", 0.20)), medicaid_factor=1.7, female_factor=1.5, male_factor=0.6),
    Condition("anxiety", (0.045, 0.11, 0.09, 0.07, 0.06), (("F411", 0.7), ("F4310", 0.3)), medicaid_factor=1.5, female_factor=1.4, male_factor=0.7, chronic=False),
    Condition("ckd", (0.0, 0.004, 0.028, 0.09, 0.17), (("N1830", 0.55), ("N1831", 0.20), ("N184", 0.25)), medicaid_factor=1.2),
    Condition("esrd", (0.0, 0.0004, 0.0018, 0.0035, 0.0035), (("N186", 1.0),), medicaid_factor=1.5),
    Condition("afib", (0.0, 0.001, 0.01, 0.055, 0.13), (("I4891", 0.6), ("I480", 0.4)), male_factor=1.3, female_factor=0.8),
    Condition("serious_mental_illness", (0.002, 0.016, 0.016, 0.010, 0.007), (("F319", 0.65), ("F209", 0.35)), medicaid_factor=3.0),
    Condition("cancer", (0.0008, 0.004, 0.018, 0.035, 0.045), (("C50911", 0.35), ("C61", 0.25), ("C3490", 0.2), ("C189", 0.2))),
    Condition("osteoarthritis", (0.0, 0.01, 0.06, 0.12, 0.15), (("M1711", 1.0),), chronic=False),
    Condition("autoimmune", (0.001, 0.005, 0.009, 0.011, 0.010), (("M069", 0.6), ("K5090", 0.4)), chronic=False),
)
COND = {c.key: i for i, c in enumerate(CONDITIONS)}
CANCER_MALE_CODES = (("C61", 0.5), ("C3490", 0.25), ("C189", 0.25))
CANCER_FEMALE_CODES = (("C50911", 0.6), ("C3490", 0.2), ("C189", 0.2))

# Conditions that raise the chance of others (multipliers on prevalence).
COMORBIDITY = {
    ("hypertension", "diabetes"): 1.6,
    ("hyperlipidemia", "diabetes"): 1.6,
    ("ckd", "diabetes"): 2.2,
    ("ckd", "hypertension"): 1.5,
    ("chf", "cad"): 2.0,
    ("depression", "alcohol_use"): 1.8,
    ("depression", "opioid_use"): 2.0,
    ("anxiety", "depression"): 2.0,
}

# ---------------------------------------------------------------------------------------------
# Diagnosis codes for acute encounters
# ---------------------------------------------------------------------------------------------

ACUTE_OFFICE_DX = (("J069", 0.2), ("J029", 0.08), ("R051", 0.1), ("M5450", 0.12), ("N390", 0.08), ("H6690", 0.07), ("R42", 0.05), ("L03115", 0.05), ("R109", 0.1), ("S93401A", 0.05), ("R509", 0.1))
ED_DX = (("R079", 0.16), ("R109", 0.15), ("S0990XA", 0.1), ("S93401A", 0.09), ("S52501A", 0.05), ("J069", 0.08), ("N390", 0.07), ("J189", 0.06), ("R55", 0.05), ("L03115", 0.05), ("R509", 0.06), ("R42", 0.04), ("K529", 0.04))
MH_ED_DX = (("F329", 0.30), ("F411", 0.22), ("F4310", 0.12), ("F319", 0.18), ("F209", 0.10), ("F332", 0.08))
SUD_ED_DX = (("F10129", 0.45), ("F10239", 0.15), ("F11120", 0.25), ("F1123", 0.15))
PREVENTIVE_DX_ADULT = "Z0000"
PREVENTIVE_DX_CHILD = "Z00129"
SCREENING_COLONOSCOPY_DX = "Z1211"
SCREENING_MAMMOGRAPHY_DX = "Z1231"
PREGNANCY_DX = "Z3400"
DIALYSIS_DX = "Z992"
CATARACT_DX = "H2513"

# ---------------------------------------------------------------------------------------------
# Inpatient DRGs: code, relative weight, mean length of stay, principal diagnosis, surgical
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DRG:
    code: str
    weight: float
    alos: float
    dx: str
    surgical: bool = False
    procedure: str | None = None
    """Surgeon's HCPCS for surgical DRGs."""


DRGS: dict[str, DRG] = {
    "291": DRG("291", 1.33, 4.6, "I5023"),
    "292": DRG("292", 0.89, 3.4, "I5023"),
    "190": DRG("190", 1.16, 4.0, "J441"),
    "192": DRG("192", 0.72, 2.9, "J441"),
    "871": DRG("871", 1.87, 5.9, "A419"),
    "872": DRG("872", 1.04, 4.0, "A419"),
    "193": DRG("193", 1.32, 4.7, "J189"),
    "195": DRG("195", 0.70, 2.8, "J189"),
    "470": DRG("470", 1.91, 2.0, "M1711", True, "27447"),
    "392": DRG("392", 0.76, 2.9, "K529"),
    "683": DRG("683", 0.91, 3.8, "N179"),
    "603": DRG("603", 0.85, 3.6, "L03115"),
    "885": DRG("885", 1.37, 8.5, "F319"),
    "897": DRG("897", 0.78, 3.8, "F10239"),
    "247": DRG("247", 2.00, 2.3, "I214", True, "92928"),
    "378": DRG("378", 1.00, 3.4, "K922"),
    "064": DRG("064", 1.85, 5.0, "I639"),
    "065": DRG("065", 1.00, 3.5, "I639"),
    "637": DRG("637", 1.37, 4.2, "E1165"),
    "638": DRG("638", 0.86, 3.0, "E1165"),
    "807": DRG("807", 0.63, 2.1, "O80"),
    "788": DRG("788", 0.92, 2.9, "O82", True, "59510"),
    "795": DRG("795", 0.17, 2.0, "Z3800"),
    "329": DRG("329", 4.40, 11.0, "C189", True, "44140"),
    "207": DRG("207", 5.60, 13.0, "J9601"),
    "853": DRG("853", 4.90, 12.0, "A419", True, "49000"),
    "460": DRG("460", 3.90, 3.5, "M5450", True, "22612"),
}

# Which DRGs an admission for a reason lands in, with shares.
ADMISSION_DRGS: dict[str, tuple[tuple[str, float], ...]] = {
    "chf": (("291", 0.55), ("292", 0.45)),
    "copd": (("190", 0.45), ("192", 0.55)),
    "diabetes": (("637", 0.4), ("638", 0.6)),
    "ckd": (("683", 1.0),),
    "cad": (("247", 0.7), ("064", 0.1), ("065", 0.2)),
    "serious_mental_illness": (("885", 1.0),),
    "depression": (("885", 1.0),),
    "alcohol_use": (("897", 1.0),),
    "opioid_use": (("897", 1.0),),
    "cancer": (("329", 0.5), ("871", 0.5)),
    "osteoarthritis": (("470", 1.0),),
    "general": (
        ("871", 0.13), ("872", 0.12), ("193", 0.12), ("195", 0.12), ("392", 0.12), ("603", 0.1),
        ("378", 0.1), ("065", 0.06), ("460", 0.05), ("207", 0.03), ("853", 0.02), ("329", 0.03),
    ),
}

# ---------------------------------------------------------------------------------------------
# Procedure codes (HCPCS/CPT) with Medicare-like professional prices in dollars
# ---------------------------------------------------------------------------------------------

PROF_PRICE: dict[str, float] = {
    # E&M office visits
    "99202": 75, "99203": 115, "99204": 170, "99205": 225,
    "99211": 25, "99212": 58, "99213": 93, "99214": 131, "99215": 185,
    # annual wellness visits
    "G0438": 175, "G0439": 120,
    # preventive medicine visits
    "99381": 120, "99382": 125, "99383": 130, "99384": 140, "99385": 140, "99386": 160, "99387": 175,
    "99391": 110, "99392": 118, "99393": 118, "99394": 128, "99395": 130, "99396": 140, "99397": 150,
    "96110": 10, "90471": 17, "90460": 24,
    "90686": 20, "90707": 85, "90700": 30, "90713": 35, "90633": 40, "90651": 250,
    # labs
    "36415": 3, "80053": 11, "85025": 8, "80061": 13, "83036": 10, "84443": 17, "81001": 3,
    # ECG, imaging (global)
    "93000": 17, "71046": 30, "74177": 330, "70553": 360, "73721": 230, "77067": 135,
    # ED professional
    "99281": 22, "99282": 45, "99283": 75, "99284": 115, "99285": 165,
    # hospital inpatient professional
    "99221": 100, "99222": 135, "99223": 190, "99231": 40, "99232": 75, "99233": 110, "99238": 75, "99239": 105,
    # behavioral health
    "90791": 175, "90832": 70, "90834": 100, "90837": 145, "99408": 35,
    "H0004": 25, "H0020": 15, "H0015": 150, "H2019": 30, "G2067": 215,
    # procedures
    "45378": 200, "66984": 550, "29881": 500, "27447": 1300, "20610": 60, "92928": 950,
    "59510": 2100, "59400": 2300, "44140": 1600, "49000": 1100, "22612": 1700,
    # anesthesia (flat)
    "00811": 150, "01402": 600, "00142": 200,
    # oncology
    "96413": 140, "J9271": 52, "J9355": 30, "J9045": 1.5,
    # physical therapy
    "97161": 100, "97110": 30,
    # dialysis (per treatment)
    "90999": 270,
    # DME and ambulance
    "E1390": 80, "A0427": 480, "A0425": 8,
    # personal care services (per 15 minutes)
    "T1019": 6.5,
}

# Outpatient facility prices by revenue code (Medicare-like, dollars), used for hospital
# outpatient lines; ED levels are priced by HCPCS below.
FACILITY_REVENUE_PRICE: dict[str, float] = {
    "0250": 60, "0300": 45, "0301": 35, "0320": 110, "0350": 450, "0403": 160, "0610": 520,
    "0360": 1500, "0490": 1900, "0636": 180, "0750": 700, "0420": 150, "0730": 70,
}
ED_FACILITY_PRICE = {"99281": 80, "99282": 140, "99283": 240, "99284": 400, "99285": 580}

# Inpatient room-and-board and ancillary revenue codes (charges only; payment is by DRG).
INPATIENT_REVENUE_CHARGE: dict[str, float] = {
    "0120": 2400, "0200": 6500, "0250": 900, "0300": 700, "0320": 500, "0360": 9000, "0450": 1500, "0636": 1200, "0420": 450,
}

FQHC_VISIT_PRICE = 190.0
"""Medicare-like prospective payment per FQHC/RHC visit."""
SNF_PER_DIEM = 560.0
DRG_BASE_RATE = 7000.0
"""Medicare-like base payment per DRG weight unit, in dollars."""

# Payer price levels relative to the Medicare-like base, by service class.
PRICE_CLASSES = ("professional", "outpatient", "inpatient", "clinic", "post_acute")
PAYER_PRICE_FACTOR: dict[str, tuple[float, float, float, float, float]] = {
    "medicare": (1.00, 1.00, 1.00, 1.00, 1.00),
    "medicaid": (1.00, 0.95, 1.00, 1.10, 0.90),
    "commercial": (1.45, 2.00, 1.85, 1.40, 1.20),
    "self_funded": (1.50, 2.10, 1.95, 1.45, 1.25),
}

# ---------------------------------------------------------------------------------------------
# Drugs (11-digit NDC-format codes, synthetic) with price per 30 days in dollars
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drug:
    key: str
    ndc: str
    name: str
    price_30: float
    quantity_30: float


DRUGS: dict[str, Drug] = {
    "metformin": Drug("metformin", "00093104801", "metformin 500 mg tablet", 8, 60),
    "insulin_glargine": Drug("insulin_glargine", "00088222033", "insulin glargine 100 unit/mL", 290, 10),
    "semaglutide": Drug("semaglutide", "00169413212", "semaglutide 1 mg/dose pen", 900, 3),
    "atorvastatin": Drug("atorvastatin", "00378395177", "atorvastatin 20 mg tablet", 6, 30),
    "lisinopril": Drug("lisinopril", "68180051301", "lisinopril 10 mg tablet", 5, 30),
    "amlodipine": Drug("amlodipine", "00591538210", "amlodipine 5 mg tablet", 6, 30),
    "losartan": Drug("losartan", "00093736498", "losartan 50 mg tablet", 9, 30),
    "metoprolol": Drug("metoprolol", "00378459201", "metoprolol succinate ER 50 mg", 12, 30),
    "furosemide": Drug("furosemide", "00054429731", "furosemide 40 mg tablet", 5, 30),
    "carvedilol": Drug("carvedilol", "68382009305", "carvedilol 12.5 mg tablet", 8, 60),
    "apixaban": Drug("apixaban", "00003089421", "apixaban 5 mg tablet", 560, 60),
    "albuterol": Drug("albuterol", "00173068220", "albuterol HFA inhaler", 55, 18),
    "tiotropium": Drug("tiotropium", "00597007541", "tiotropium 18 mcg inhalation capsule", 480, 30),
    "fluticasone_salmeterol": Drug("fluticasone_salmeterol", "00781610163", "fluticasone/salmeterol 250/50", 150, 60),
    "sertraline": Drug("sertraline", "16714061204", "sertraline 50 mg tablet", 7, 30),
    "escitalopram": Drug("escitalopram", "00093585201", "escitalopram 10 mg tablet", 8, 30),
    "bupropion": Drug("bupropion", "00591354330", "bupropion XL 150 mg tablet", 20, 30),
    "quetiapine": Drug("quetiapine", "00378502891", "quetiapine 100 mg tablet", 15, 30),
    "aripiprazole": Drug("aripiprazole", "59148000913", "aripiprazole 10 mg tablet", 25, 30),
    "buprenorphine_naloxone": Drug("buprenorphine_naloxone", "12496120803", "buprenorphine/naloxone 8-2 mg film", 280, 60),
    "naltrexone": Drug("naltrexone", "00406117001", "naltrexone 50 mg tablet", 45, 30),
    "adalimumab": Drug("adalimumab", "00074055402", "adalimumab 40 mg/0.4 mL pen", 6900, 2),
    "letrozole": Drug("letrozole", "16729003415", "letrozole 2.5 mg tablet", 20, 30),
    "amoxicillin": Drug("amoxicillin", "65862001605", "amoxicillin 500 mg capsule", 10, 30),
    "azithromycin": Drug("azithromycin", "59762314001", "azithromycin 250 mg tablet", 12, 6),
}

# Maintenance drugs by condition: (drug, share of people with the condition who take it).
CONDITION_DRUGS: dict[str, tuple[tuple[str, float], ...]] = {
    "diabetes": (("metformin", 0.75), ("insulin_glargine", 0.22), ("semaglutide", 0.12)),
    "hypertension": (("lisinopril", 0.40), ("amlodipine", 0.35), ("losartan", 0.20)),
    "hyperlipidemia": (("atorvastatin", 0.70),),
    "chf": (("furosemide", 0.80), ("carvedilol", 0.60)),
    "cad": (("metoprolol", 0.60), ("atorvastatin", 0.30)),
    "afib": (("apixaban", 0.60), ("metoprolol", 0.40)),
    "copd": (("tiotropium", 0.45), ("albuterol", 0.70)),
    "asthma": (("albuterol", 0.60), ("fluticasone_salmeterol", 0.20)),
    "depression": (("sertraline", 0.40), ("escitalopram", 0.30), ("bupropion", 0.15)),
    "anxiety": (("escitalopram", 0.25),),
    "serious_mental_illness": (("quetiapine", 0.45), ("aripiprazole", 0.40)),
    "opioid_use": (("buprenorphine_naloxone", 0.55),),
    "alcohol_use": (("naltrexone", 0.10),),
    "autoimmune": (("adalimumab", 0.40),),
    "cancer": (("letrozole", 0.20),),
}
ACUTE_DRUGS = (("amoxicillin", 0.6), ("azithromycin", 0.4))

# ---------------------------------------------------------------------------------------------
# Labs and observations
# ---------------------------------------------------------------------------------------------

LOINC_HBA1C = "4548-4"
LOINC_SYSTOLIC = "8480-6"
LOINC_DIASTOLIC = "8462-4"
