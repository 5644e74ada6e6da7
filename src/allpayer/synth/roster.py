"""The synthetic provider network: hospitals, practices, clinicians and their payment models.

The roster has a fixed, Vermont-sized shape (about 1,900 NPIs) that does not depend on the
number of members. Built from its own random stream, it is the same for a given seed whatever the
population size.

Network shape and payment models (every choice below is an assumption, written down here):

- one or two hospitals per HSA (Grace Cottage sits in the Brattleboro HSA next to Brattleboro
  Memorial; Dartmouth-Hitchcock in Lebanon, NH is the participating hospital of the Upper Valley
  HSA); Massachusetts General and Albany Medical Center are out-of-state, non-participating;
- each hospital has an employed medical group (ED physicians, hospitalists, radiology,
  anesthesia, specialists by hospital size) and hospital-owned primary care practices; critical
  access hospitals in rural HSAs also own a provider-based rural health clinic;
- independent primary care practices, federally qualified health centers (billing under their
  CCN), free-standing rural health clinics, independent specialists, designated mental-health
  agencies, substance-use treatment programs (42 CFR Part 2 programs), and ancillary suppliers
  (labs, ambulance, DME, skilled nursing, dialysis);
- payment model per payer (``payment_model``): participating hospitals and their employed groups
  are paid by fixed prospective payment (``fpp``) for Medicare and Medicaid, and for MVP at the
  UVM Health Network hospitals (UVMMC, CVMC), fee-for-service otherwise; Dartmouth-Hitchcock's
  FPP is the `RosterOptions.dhmc_fpp` parameter; independent primary care is in comprehensive
  payment reform (``cpr``); designated agencies and substance-use programs are ``capitated`` by
  Medicaid; everyone else is ``ffs``;
- BCBSVT participation ends 2022-12-31 (BCBSVT left OneCare for 2023): from 2023-01-01 every
  BCBSVT row is non-participating fee-for-service;
- one independent primary care practice leaves the ACO on 2023-07-01 (its rows become
  non-participating), so rules about practices that leave mid-year have data to act on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from allpayer.inputs.schema import PAYMENT_ARRANGEMENTS
from allpayer.synth import names
from allpayer.synth import reference as ref
from allpayer.synth.ids import make_npis, make_tins

# Dated periods of the roster: payment models are constant inside one.
PERIOD_STARTS: tuple[dt.date, ...] = (dt.date(2022, 1, 1), dt.date(2023, 1, 1), dt.date(2023, 7, 1))
EPOCH = dt.date(1970, 1, 1)
PERIOD_START_DAYS = np.array([(d - EPOCH).days for d in PERIOD_STARTS], dtype=np.int32)

MODEL_CODE = {m: i for i, m in enumerate(PAYMENT_ARRANGEMENTS)}
PARTICIPATION = ("participant", "preferred", "non_participating")

UVM_HEALTH_NETWORK = ("uvmmc", "cvmc")
PHARMACIES_PER_HSA = 4


@dataclass(frozen=True)
class RosterOptions:
    """Parameters of the synthetic network."""

    dhmc_fpp: bool = False
    """Whether Dartmouth-Hitchcock (Upper Valley HSA) is paid by FPP for Medicare and Medicaid."""
    clinicians_per_1000: float = 1.0
    """Primary care clinicians per 1,000 residents of an HSA (Vermont has about one)."""


_FIRST = (
    "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Reese", "Drew", "Hayden",
    "Emerson", "Rowan", "Sage", "Parker", "Logan", "Cameron", "Dana", "Robin", "Kendall", "Shawn", "Leslie", "Lee",
)
_LAST = (
    "Abbott", "Barrows", "Chittenden", "Davenport", "Ellsworth", "Fairbanks", "Gates", "Hollister", "Ingalls", "Jewett",
    "Kinsley", "Lamoille", "Merrill", "Noyes", "Orcutt", "Pettibone", "Quimby", "Rowell", "Sargent", "Thayer",
    "Underhill", "Vail", "Whitcomb", "Yates", "Ainsworth", "Bixby", "Colby", "Dunham", "Eastman", "Fuller",
    "Goodrich", "Hale", "Kimball", "Leavitt", "Marsh", "Nye", "Pike", "Richmond", "Stearns", "Tuttle", "Wheeler",
)
_CRED = {"nurse_practitioner": "APRN", "physician_assistant": "PA-C", "clinical_nurse_specialist": "CNS",
         "psychologist": "PhD", "social_worker": "LICSW", "physical_therapy": "DPT"}


@dataclass
class Entity:
    """One NPI billing under one TIN (clinician or organization), before NPIs are assigned."""

    name: str
    entity_type: str
    provider_type: str
    specialty: str | None
    primary_care: bool
    practice: int
    hsa: str
    state: str
    ccn: str | None = None
    role: str = ""  # pool the entity is picked from
    site: int = -1  # HSA index or hospital index the pool is keyed by


@dataclass
class Practice:
    key: str
    name: str
    practice_type: str
    hsa: str
    state: str
    organization: str | None
    kind: str  # models: "hospital", "hospital_group", "independent_pc", "fqhc", "rhc", "specialist", "agency", "sud", "ancillary", "snf", "oos", "rhc_hospital"
    hospital: str | None = None
    ccn: str | None = None
    org_entity: int = -1
    pediatric: bool = False
    leaves_aco: dt.date | None = None


@dataclass
class Pool:
    """Entities of one role, grouped by site, for vectorized picking."""

    flat: np.ndarray
    start: np.ndarray
    count: np.ndarray


@dataclass
class Roster:
    """The provider network: the provider_roster table plus lookup arrays used to write claims."""

    table: pa.Table
    npi: pa.Array
    tin: pa.Array
    ccn: pa.Array
    billing: np.ndarray
    """Entity index of the organization each entity bills under (itself for organizations)."""
    hospital: np.ndarray
    """Hospital index of hospital facility entities, -1 otherwise."""
    hsa: np.ndarray
    pediatric: np.ndarray
    model: np.ndarray
    """Payment arrangement code by [entity, payer, period] (index into PAYMENT_ARRANGEMENTS)."""
    in_network: np.ndarray
    """True where the entity participates (or is preferred) for [entity, payer, period]."""
    part2: np.ndarray
    """Entities that are 42 CFR Part 2 substance-use programs (or work for one)."""
    tin_vocab: pa.Array | None = None
    tin_index: np.ndarray | None = None
    ccn_vocab: pa.Array | None = None
    ccn_index: np.ndarray | None = None
    pools: dict[str, Pool] = field(default_factory=dict)
    hospital_entity: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    """Facility entity index of each hospital in reference.HOSPITALS."""
    entity_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    pharmacy_npi: pa.Array | None = None
    """NPIs of retail pharmacies (not ACO providers, so not in the roster table), by HSA."""

    def pick(self, rng: np.random.Generator, role: str, site: np.ndarray) -> np.ndarray:
        """One entity of `role` per element of `site` (HSA or hospital index), chosen at random."""
        pool = self.pools[role]
        site = np.asarray(site, dtype=np.int64)
        cnt = pool.count[site]
        u = rng.random(len(site))
        off = np.minimum((u * cnt).astype(np.int64), np.maximum(cnt - 1, 0))
        return pool.flat[pool.start[site] + off]


def _model_tables(practices: list[Practice], entities: list[Entity], opts: RosterOptions):
    """Payment model and participation per [entity, payer, period]."""
    n, p, t = len(entities), len(names.PAYERS), len(PERIOD_STARTS)
    model = np.full((n, p, t), MODEL_CODE["ffs"], dtype=np.int8)
    part = np.full((n, p, t), PARTICIPATION.index("participant"), dtype=np.int8)
    pay = {payer: i for i, payer in enumerate(names.PAYERS)}
    for i, e in enumerate(entities):
        pr = practices[e.practice]
        kind = pr.kind
        hosp = pr.hospital
        fpp_hospital = kind in ("hospital", "hospital_group", "rhc_hospital") and hosp is not None
        for payer, j in pay.items():
            m = "ffs"
            pt = "participant"
            if kind == "oos":
                pt = "non_participating"
            elif kind in ("ancillary", "snf"):
                pt = "preferred"
            elif fpp_hospital:
                if payer in (names.MEDICARE, names.MEDICAID):
                    m = "fpp" if (hosp != "dhmc" or opts.dhmc_fpp) else "ffs"
                elif payer == names.MVP and hosp in UVM_HEALTH_NETWORK:
                    m = "fpp"
            elif kind == "independent_pc":
                m = "cpr"
            elif kind in ("agency", "sud") and payer == names.MEDICAID:
                m = "capitated"
            model[i, j, :] = MODEL_CODE[m]
            part[i, j, :] = PARTICIPATION.index(pt)
            if payer == names.BCBSVT:
                # BCBSVT left OneCare for 2023.
                model[i, j, 1:] = MODEL_CODE["ffs"]
                part[i, j, 1:] = PARTICIPATION.index("non_participating")
            if pr.leaves_aco is not None:
                k = PERIOD_STARTS.index(pr.leaves_aco)
                model[i, j, k:] = MODEL_CODE["ffs"]
                part[i, j, k:] = PARTICIPATION.index("non_participating")
    return model, part


def build_roster(seed_seq: np.random.SeedSequence, opts: RosterOptions = RosterOptions(),
                 first_day: dt.date = PERIOD_STARTS[0]) -> Roster:
    """Build the provider network from its own random stream.

    Rows take effect on `first_day` (the first service day) or 2022-01-01, whichever is earlier.
    """
    rng = np.random.Generator(np.random.PCG64(seed_seq))
    practices: list[Practice] = []
    entities: list[Entity] = []

    def person_name(spec: str) -> str:
        f = _FIRST[int(rng.integers(len(_FIRST)))]
        last = _LAST[int(rng.integers(len(_LAST)))]
        cred = _CRED.get(spec, "MD")
        return f"{f} {last} {cred}"

    def add_practice(pr: Practice, org_name: str | None = None, org_ccn: str | None = None, facility=False) -> int:
        practices.append(pr)
        k = len(practices) - 1
        entities.append(
            Entity(org_name or pr.name, "organization", "facility" if facility else "other", None, False, k,
                   pr.hsa, pr.state, org_ccn)
        )
        pr.org_entity = len(entities) - 1
        return k

    def add_clinicians(k: int, spec_counts: dict[str, int], role: str | None, site: int, pc: bool = False):
        pr = practices[k]
        for spec, cnt in spec_counts.items():
            for _ in range(cnt):
                ptype = {"nurse_practitioner": "np", "physician_assistant": "pa", "clinical_nurse_specialist": "cns"}.get(
                    spec, "other" if spec in ("psychologist", "social_worker", "physical_therapy") else "physician")
                entities.append(
                    Entity(person_name(spec), "individual", ptype, spec, pc and spec in ref.PRIMARY_CARE_SPECIALTIES,
                           k, pr.hsa, pr.state, pr.ccn, role or spec, site)
                )

    hsa_idx = ref.HSA_INDEX
    # --- hospitals and their medical groups ------------------------------------------------
    hospital_fac = []
    for hi, h in enumerate(ref.HOSPITALS):
        kind = "oos" if h.kind == "oos" else "hospital"
        pt = "non_participating" if h.kind == "oos" else "hospital"
        k = add_practice(Practice(f"hosp-{h.key}", h.name, pt, h.hsa, h.state, f"org-{h.key}", kind, h.key, h.ccn),
                         org_ccn=h.ccn, facility=True)
        entities[-1].role = "hospital_facility"
        entities[-1].site = hi
        hospital_fac.append(len(entities) - 1)
        gname = f"{h.name} Medical Group"
        gk = add_practice(Practice(f"grp-{h.key}", gname, "non_participating" if h.kind == "oos" else "hospital_owned",
                                   h.hsa, h.state, f"org-{h.key}", "oos" if h.kind == "oos" else "hospital_group", h.key))
        size = {"tertiary": 3.0, "pps": 1.0, "cah": 0.4, "oos": 1.5}[h.kind]
        base = {
            "emergency_medicine": 6, "hospitalist": 6, "radiology": 3, "anesthesiology": 3, "general_surgery": 2,
            "orthopedics": 2, "obgyn": 2,
        }
        counts = {s: max(1, int(round(c * size))) for s, c in base.items()}
        add_clinicians(gk, counts, None, hi)
        spec_base = {"cardiology": 3, "endocrinology": 1, "psychiatry": 2, "pulmonology": 2, "nephrology": 1,
                     "gastroenterology": 2, "oncology": 2, "neurology": 2, "dermatology": 1, "ophthalmology": 2,
                     "rheumatology": 1}
        if h.kind != "cah":
            add_clinicians(gk, {s: max(1, int(round(c * size))) for s, c in spec_base.items()}, None, hi)
    hospital_fac = np.array(hospital_fac, dtype=np.int32)

    # --- primary care practices per HSA -------------------------------------------------------
    independent_pc: list[int] = []
    ccn_next = {"fqhc": 1800, "rhc": 3800, "rhc_hospital": 8500}

    def next_ccn(kind: str) -> str:
        ccn_next[kind] += 1
        return f"47{ccn_next[kind] - 1:04d}"

    for h in ref.HSAS:
        hi = hsa_idx[h.key]
        n_clin = max(4, int(round(h.population / 1000 * opts.clinicians_per_1000)))
        shares = {"hospital_owned": 0.40, "independent": 0.27, "fqhc": 0.28, "rhc": 0.05 if h.rural else 0.0}
        main_h = [x for x in ref.HOSPITALS if x.hsa == h.key][0]
        for ptype, share in shares.items():
            target = int(round(n_clin * share))
            made = 0
            site_no = 0
            while made < target:
                size = int(min(target - made, rng.integers(3, 11)))
                site_no += 1
                town = h.name.split(" (")[0]
                if ptype == "hospital_owned":
                    pr = Practice(f"pc-{h.key}-ho{site_no}", f"{main_h.name} Primary Care {town} {site_no}", "hospital_owned",
                                  h.key, "VT" if main_h.state == "VT" else main_h.state, f"org-{main_h.key}", "hospital_group", main_h.key)
                    if main_h.kind == "cah" and site_no == 1 and h.rural:
                        pr.practice_type = "rhc"
                        pr.kind = "rhc_hospital"
                        pr.ccn = next_ccn("rhc_hospital")
                        pr.name = f"{main_h.name} Rural Health Clinic"
                elif ptype == "independent":
                    pr = Practice(f"pc-{h.key}-in{site_no}", f"{town} Family Health {site_no}", "independent", h.key, "VT",
                                  None, "independent_pc")
                elif ptype == "fqhc":
                    pr = Practice(f"pc-{h.key}-fq{site_no}", f"{town} Community Health Center {site_no}", "fqhc", h.key, "VT",
                                  f"org-fqhc-{h.key}", "fqhc", ccn=next_ccn("fqhc"))
                else:
                    pr = Practice(f"pc-{h.key}-rh{site_no}", f"{town} Rural Health Clinic {site_no}", "rhc", h.key, "VT",
                                  None, "rhc", ccn=next_ccn("rhc"))
                pr.pediatric = ptype in ("independent", "hospital_owned") and site_no == 2
                k = add_practice(pr, org_ccn=pr.ccn, facility=pr.ccn is not None)
                if pr.kind == "independent_pc":
                    independent_pc.append(k)
                if pr.pediatric:
                    mix = {"pediatrics": max(1, size - 1), "nurse_practitioner": 1}
                else:
                    mix = {}
                    for _ in range(size):
                        s = ("family_practice", "internal_medicine", "nurse_practitioner", "physician_assistant",
                             "geriatrics", "clinical_nurse_specialist")[
                            int(rng.choice(6, p=[0.40, 0.22, 0.22, 0.11, 0.03, 0.02]))]
                        mix[s] = mix.get(s, 0) + 1
                add_clinicians(k, mix, "pcp", hi, pc=True)
                made += size
    # one independent practice leaves the ACO mid-2023
    if independent_pc:
        practices[independent_pc[len(independent_pc) // 3]].leaves_aco = dt.date(2023, 7, 1)

    # --- independent specialists, agencies, Part 2 programs, ancillary ------------------------
    for h in ref.HSAS:
        hi = hsa_idx[h.key]
        town = h.name.split(" (")[0]
        if h.population >= 40_000:
            k = add_practice(Practice(f"sp-{h.key}", f"{town} Specialty Associates", "specialist", h.key, "VT", None, "specialist"))
            add_clinicians(k, {"cardiology": 1, "orthopedics": 1, "dermatology": 1, "ophthalmology": 1}, None, hi)
        k = add_practice(Practice(f"ct-{h.key}", f"{town} Counseling Associates", "specialist", h.key, "VT", None, "specialist"))
        add_clinicians(k, {"psychologist": 2, "social_worker": 3}, "therapist", hi)
        k = add_practice(Practice(f"pt-{h.key}", f"{town} Physical Therapy", "specialist", h.key, "VT", None, "specialist"))
        add_clinicians(k, {"physical_therapy": 2}, "physical_therapist", hi)
        k = add_practice(Practice(f"da-{h.key}", f"{town} Designated Mental Health Agency", "specialist", h.key, "VT", None, "agency"))
        add_clinicians(k, {"psychiatry": 1, "social_worker": 3, "nurse_practitioner": 1}, "agency", hi)
        if h.population >= 40_000:
            k = add_practice(Practice(f"sud-{h.key}", f"{town} Opioid Treatment Program", "specialist", h.key, "VT", None, "sud"))
            add_clinicians(k, {"addiction_medicine": 1, "nurse_practitioner": 1, "social_worker": 2}, "sud", hi)
        k = add_practice(Practice(f"snf-{h.key}", f"{town} Health and Rehabilitation Center", "specialist", h.key, "VT", None, "snf",
                                  ccn=f"47{5000 + hi * 10:04d}"), org_ccn=f"47{5000 + hi * 10:04d}", facility=True)
        entities[-1].role = "snf"
        entities[-1].site = hi
    for key, label, role, ccn in (
        ("lab", "Green Mountain Reference Laboratory", "lab", None),
        ("amb", "Vermont Regional Ambulance Service", "ambulance", None),
        ("dme", "Northern Home Medical Equipment", "dme", None),
        ("hcb", "Vermont Home Care Partners", "home_care", None),
        ("dia", "Vermont Dialysis Center", "dialysis", "472301"),
    ):
        k = add_practice(Practice(f"anc-{key}", label, "specialist", "burlington", "VT", None, "ancillary", ccn=ccn),
                         org_ccn=ccn, facility=ccn is not None)
        entities[-1].role = role
        entities[-1].site = 0

    n = len(entities)
    is_org = np.array([e.entity_type == "organization" for e in entities])
    n_pharm = PHARMACIES_PER_HSA * len(ref.HSAS)
    all_npis = make_npis(rng, n + n_pharm, np.concatenate([is_org, np.ones(n_pharm, dtype=bool)]))
    npis, pharmacy_npis = all_npis[:n], all_npis[n:]
    tins_practice = make_tins(rng, len(practices))
    # hospital-owned practices bill under their hospital's TIN; FQHC sites under one TIN per HSA
    tin_by_org: dict[str, str] = {}
    practice_tin = []
    for k, pr in enumerate(practices):
        if pr.organization:
            practice_tin.append(tin_by_org.setdefault(pr.organization, tins_practice[k]))
        else:
            practice_tin.append(tins_practice[k])

    model, part = _model_tables(practices, entities, opts)
    billing = np.array([practices[e.practice].org_entity for e in entities], dtype=np.int32)
    hospital = np.full(n, -1, dtype=np.int32)
    hospital[hospital_fac] = np.arange(len(hospital_fac), dtype=np.int32)
    hsa_arr = np.array([hsa_idx.get(e.hsa, -1) for e in entities], dtype=np.int32)
    pediatric = np.array([practices[e.practice].pediatric for e in entities])
    part2 = np.array([practices[e.practice].kind == "sud" for e in entities])
    kind_names = ("hospital", "hospital_group", "independent_pc", "fqhc", "rhc", "specialist", "agency", "sud",
                  "ancillary", "snf", "oos", "rhc_hospital")
    ekind = np.array([kind_names.index(practices[e.practice].kind) for e in entities], dtype=np.int8)

    # --- the provider_roster table --------------------------------------------------------------
    rows: dict[str, list] = {c: [] for c in (
        "npi", "tin", "ccn", "provider_name", "entity_type", "provider_type", "specialty_code", "specialty",
        "primary_care_flag", "practice_id", "practice_name", "practice_type", "organization_id", "hsa", "state",
        "payer", "participation", "payment_model", "effective_start_date", "effective_end_date", "data_source")}
    for i, e in enumerate(entities):
        pr = practices[e.practice]
        for j, payer in enumerate(names.PAYERS):
            t0 = 0
            for t in range(1, len(PERIOD_STARTS) + 1):
                if t < len(PERIOD_STARTS) and model[i, j, t] == model[i, j, t0] and part[i, j, t] == part[i, j, t0]:
                    continue
                spec = ref.SPECIALTIES.get(e.specialty) if e.specialty else None
                rows["npi"].append(npis[i])
                rows["tin"].append(practice_tin[e.practice])
                rows["ccn"].append(e.ccn)
                rows["provider_name"].append(e.name)
                rows["entity_type"].append(e.entity_type)
                rows["provider_type"].append(e.provider_type)
                rows["specialty_code"].append(spec[0] if spec else None)
                rows["specialty"].append(spec[1] if spec else None)
                rows["primary_care_flag"].append(bool(e.primary_care))
                rows["practice_id"].append(pr.key)
                rows["practice_name"].append(pr.name)
                rows["practice_type"].append(pr.practice_type)
                rows["organization_id"].append(pr.organization)
                rows["hsa"].append(pr.hsa)
                rows["state"].append(pr.state)
                rows["payer"].append(payer)
                rows["participation"].append(PARTICIPATION[part[i, j, t0]])
                rows["payment_model"].append(PAYMENT_ARRANGEMENTS[model[i, j, t0]])
                rows["effective_start_date"].append(min(first_day, PERIOD_STARTS[0]) if t0 == 0 else PERIOD_STARTS[t0])
                end = PERIOD_STARTS[t] - dt.timedelta(days=1) if t < len(PERIOD_STARTS) else None
                rows["effective_end_date"].append(end)
                rows["data_source"].append(names.DATA_SOURCE)
                t0 = t
    schema = pa.schema([
        ("npi", pa.string()), ("tin", pa.string()), ("ccn", pa.string()), ("provider_name", pa.string()),
        ("entity_type", pa.string()), ("provider_type", pa.string()), ("specialty_code", pa.string()),
        ("specialty", pa.string()), ("primary_care_flag", pa.bool_()), ("practice_id", pa.string()),
        ("practice_name", pa.string()), ("practice_type", pa.string()), ("organization_id", pa.string()),
        ("hsa", pa.string()), ("state", pa.string()), ("payer", pa.string()), ("participation", pa.string()),
        ("payment_model", pa.string()), ("effective_start_date", pa.date32()), ("effective_end_date", pa.date32()),
        ("data_source", pa.string()),
    ])
    table = pa.Table.from_pydict(rows, schema=schema)

    ent_tins = [practice_tin[e.practice] for e in entities]
    tin_vocab = sorted(set(ent_tins))
    tin_pos = {t: i for i, t in enumerate(tin_vocab)}
    ccn_vocab = sorted({e.ccn for e in entities if e.ccn})
    ccn_pos = {c: i for i, c in enumerate(ccn_vocab)}
    roster = Roster(
        table=table,
        npi=pa.array(npis, pa.string()),
        tin=pa.array(ent_tins, pa.string()),
        ccn=pa.array([e.ccn for e in entities], pa.string()),
        tin_vocab=pa.array(tin_vocab, pa.string()),
        tin_index=np.array([tin_pos[t] for t in ent_tins], dtype=np.int32),
        ccn_vocab=pa.array(ccn_vocab, pa.string()),
        ccn_index=np.array([ccn_pos[e.ccn] if e.ccn else -1 for e in entities], dtype=np.int32),
        billing=billing,
        hospital=hospital,
        hsa=hsa_arr,
        pediatric=pediatric,
        model=model,
        in_network=part != PARTICIPATION.index("non_participating"),
        part2=part2,
        hospital_entity=hospital_fac,
        entity_kind=ekind,
        pharmacy_npi=pa.array(pharmacy_npis, pa.string()),
    )
    _build_pools(roster, entities, practices)
    return roster


def _pool(members: list[tuple[int, int]], n_sites: int, fallback: dict[int, int] | None = None) -> Pool:
    """Pool from (site, entity) pairs; empty sites borrow the pool of `fallback[site]`."""
    members = sorted(members)
    sites = np.array([s for s, _ in members], dtype=np.int64)
    flat = np.array([e for _, e in members], dtype=np.int32)
    start = np.searchsorted(sites, np.arange(n_sites), side="left").astype(np.int64)
    end = np.searchsorted(sites, np.arange(n_sites), side="right").astype(np.int64)
    count = end - start
    for s in range(n_sites):
        if count[s] == 0:
            t = (fallback or {}).get(s)
            if t is None or count[t] == 0:
                # any non-empty site
                t = int(np.argmax(count > 0))
            start[s], count[s] = start[t], count[t]
    return Pool(flat, start, count)


def _build_pools(roster: Roster, entities: list[Entity], practices: list[Practice]) -> None:
    n_hsa = len(ref.HSAS)
    n_hosp = len(ref.HOSPITALS)
    burl = ref.HSA_INDEX["burlington"]
    uvmmc = ref.HOSPITAL_INDEX["uvmmc"]
    hsa_fallback = {s: burl for s in range(n_hsa)}
    # hospital-keyed pools fall back to the tertiary hospital for the same HSA, else UVMMC
    hosp_fallback = {}
    for hi, h in enumerate(ref.HOSPITALS):
        t = ref.TERTIARY_REFERRAL.get(h.hsa, "uvmmc")
        hosp_fallback[hi] = ref.HOSPITAL_INDEX[t] if ref.HOSPITAL_INDEX[t] != hi else uvmmc

    by_role_hsa: dict[str, list[tuple[int, int]]] = {}
    by_role_hosp: dict[str, list[tuple[int, int]]] = {}
    for i, e in enumerate(entities):
        pr = practices[e.practice]
        if e.entity_type == "individual":
            if pr.kind in ("hospital_group", "oos") and e.role not in ("pcp",):
                by_role_hosp.setdefault(e.specialty, []).append((e.site, i))
                if pr.kind != "oos":
                    # hospital-employed specialists also serve their HSA's office visits
                    by_role_hsa.setdefault("spec_" + e.specialty, []).append((ref.HSA_INDEX[pr.hsa], i))
            elif e.role == "pcp":
                key = "pcp_child" if pr.pediatric else "pcp_adult"
                by_role_hsa.setdefault(key, []).append((e.site, i))
                if not pr.pediatric and e.specialty != "geriatrics":
                    by_role_hsa.setdefault("pcp_child", []).append((e.site, i))
                by_role_hsa.setdefault("pcp_any", []).append((e.site, i))
            elif pr.kind == "specialist" and e.specialty not in ("psychologist", "social_worker", "physical_therapy"):
                by_role_hsa.setdefault("spec_" + e.specialty, []).append((e.site, i))
            else:
                by_role_hsa.setdefault(e.role, []).append((e.site, i))
        elif e.role:
            if e.role == "hospital_facility":
                by_role_hosp.setdefault("hospital_facility", []).append((e.site, i))
            else:
                by_role_hsa.setdefault(e.role, []).append((e.site, i))
    # single-site ancillary pools serve every HSA
    for role in ("lab", "ambulance", "dme", "dialysis", "home_care"):
        members = by_role_hsa.get(role, [])
        by_role_hsa[role] = [(s, e) for s in range(n_hsa) for _, e in members]
    pools: dict[str, Pool] = {}
    for role, members in by_role_hsa.items():
        pools[role] = _pool(members, n_hsa, hsa_fallback)
    for role, members in by_role_hosp.items():
        pools["hosp_" + role] = _pool(members, n_hosp, hosp_fallback)
    roster.pools = pools
