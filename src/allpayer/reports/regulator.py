"""Regulator report (Green Mountain Care Board): scale by payer against the APM scale targets,
TCOC growth per capita of the members loaded next to the APM's 3.5% target and 4.3% ceiling, and
quality results. Counts of people from 1 to 10 are suppressed, with complementary suppression.

Scale shares are of the members loaded unless statewide denominators are supplied (``--inputs``
YAML: ``statewide_lives: {all_payer: N, medicare: N}``, ``national_medicare_growth: "0.031"``);
the TCOC growth shown is that of the members loaded, which is not the statewide APM metric."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from allpayer.reports import charts
from allpayer.reports.base import (HIDDEN, Chart, Period, Report, ReportError, Table, as_period, count, of_year, pct,
                                   require, rows, table, usd)
from allpayer.reports.employer import quality_rows, rate_hidden, rate_text
from allpayer.reports.suppression import is_small, suppress

APM_TARGETS = Path(__file__).with_name("apm_targets.yaml")


class StatewideLives(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all_payer: int | None = None
    medicare: int | None = None


class RegulatorInputs(BaseModel):
    """Optional statewide figures supplied by the user (the engine cannot compute them)."""
    model_config = ConfigDict(extra="forbid")
    statewide_lives: StatewideLives = StatewideLives()
    national_medicare_growth: Decimal | None = None


def load_inputs(path: Path | None) -> RegulatorInputs:
    if path is None:
        return RegulatorInputs()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return RegulatorInputs.model_validate(data)
    except OSError as e:
        raise ReportError(f"cannot read regulator inputs {path}: {e.strerror}") from e
    except (ValidationError, yaml.YAMLError) as e:
        first = str(e).splitlines()
        raise ReportError(f"{path}: bad regulator inputs: {' '.join(first[:3])}") from e


def apm_targets() -> dict:
    return yaml.safe_load(APM_TARGETS.read_text())


def _ratio(n: int, d: int | None) -> Decimal | None:
    if not d:
        return None
    return (Decimal(n) / Decimal(d)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def people_by(t, column: str, values=None) -> tuple[dict, int]:
    """The distinct people (``person_id``) of `t` for each value of `column`, and in all, from one
    grouping by person (two distinct counts would each read `t`). `values`: the values counted
    (default: those of `t`, found first); a value without people counts 0."""
    if values is None:
        values = sorted(r[column] for r in rows(t.select(column).distinct()) if r[column] is not None)
    per = t.group_by("person_id").aggregate(**{f"_v{i}": (t[column] == v).any() for i, v in enumerate(values)})
    sums = {f"n{i}": per[f"_v{i}"].cast("int64").sum() for i in range(len(values))}
    got = rows(per.aggregate(_all=per.count(), **sums))[0]
    return {v: int(got[f"n{i}"] or 0) for i, v in enumerate(values)}, int(got["_all"] or 0)


def build(con, org: str, period: Period | int, run_id: str, inputs: RegulatorInputs | None = None) -> Report:
    period = as_period(period)
    period.year_only("the regulator report (scale, annual TCOC growth)")
    year = period.year
    require(con, "attribution", "member_months", "tcoc_member_month")
    inputs = inputs or RegulatorInputs()
    targets = apm_targets()
    rep = Report(kind="regulator", org=org, year=year, run_id=run_id,
                 title=f"Regulator report: scale, TCOC growth and quality, {year}",
                 subtitle=f"Prepared for {org}. Counts from 1 to 10 are shown as {HIDDEN}, with further cells hidden "
                          f"so totals cannot reveal them. Run {run_id}.")
    mm = of_year(table(con, "member_months"), year)
    payer_of = mm.select("program_id", "payer_type").distinct()
    a = of_year(table(con, "attribution"), year)
    a = a.filter(a.attributed & a.eligible).join(payer_of, "program_id")
    loaded, distinct_loaded = people_by(mm, "payer_type")
    att, distinct_att = people_by(a, "payer_type", sorted(loaded))
    payers = sorted(loaded)
    # suppression: each column sums over payers; the distinct count = the sum less those counted twice
    vals = {("att", p): att.get(p, 0) for p in payers} | {("load", p): loaded[p] for p in payers}
    vals |= {("att", "sum"): sum(att.values()), ("load", "sum"): sum(loaded.values()),
             ("att", "distinct"): distinct_att, ("load", "distinct"): distinct_loaded,
             ("att", "overlap"): sum(att.values()) - distinct_att,
             ("load", "overlap"): sum(loaded.values()) - distinct_loaded}
    cons = []
    for k in ("att", "load"):
        cons.append(((k, "sum"), [(k, p) for p in payers]))
        cons.append(((k, "sum"), [(k, "distinct"), (k, "overlap")]))
    hidden = suppress(vals, cons, keep_shown=[("att", "distinct"), ("load", "distinct")])

    def show(key):
        return HIDDEN if key in hidden else count(vals[key])

    out = []
    for p in payers:
        share = None if ("att", p) in hidden or ("load", p) in hidden else _ratio(att.get(p, 0), loaded[p])
        out.append([p, show(("att", p)), show(("load", p)), pct(share) if share is not None else HIDDEN])
    out.append(["Sum over payers", show(("att", "sum")), show(("load", "sum")), ""])
    out.append(["Persons counted under more than one payer", show(("att", "overlap")), show(("load", "overlap")), ""])
    share_all = _ratio(distinct_att, distinct_loaded)
    out.append(["Distinct persons across payers", show(("att", "distinct")), show(("load", "distinct")),
                pct(share_all) if ("att", "distinct") not in hidden and ("load", "distinct") not in hidden else HIDDEN])
    rep.tables.append(Table("scale_by_payer", "Attributed lives by payer (scale)",
                            ["payer", "attributed persons", "persons loaded", "share attributed"], out,
                            note="A person is attributed when attributed and eligible in at least one month of the "
                                 "year. Shares are of the persons loaded, not of the statewide population."))
    rep.totals = [("Distinct persons attributed across payers", show(("att", "distinct"))),
                  ("Attributed lives, sum over payers", show(("att", "sum")))]
    _scale_targets(rep, year, targets, [
        ("all-payer", "all_payer", distinct_att, share_all, inputs.statewide_lives.all_payer,
         ("att", "distinct") in hidden or ("load", "distinct") in hidden),
        ("Medicare", "medicare", att.get("medicare", 0), _ratio(att.get("medicare", 0), loaded.get("medicare")),
         inputs.statewide_lives.medicare, ("att", "medicare") in hidden or ("load", "medicare") in hidden)])
    _growth(con, rep, year, targets, inputs)
    _quality(con, rep, year)
    rep.charts.append(Chart("scale", "Attributed lives by payer", charts.bar_chart(
        "Attributed lives by payer", payers,
        {"attributed": [None if ("att", p) in hidden else att.get(p, 0) for p in payers],
         "loaded": [None if ("load", p) in hidden else loaded[p] for p in payers]})))
    rep.provenance = [("run_id", run_id), ("APM targets", f"{APM_TARGETS.name}: domain.md T10, T11 (DOC S7, S8)"),
                      ("tables", "attribution, member_months, tcoc_member_month, quality_rates")]
    return rep


def _target_for(series: dict, year: int) -> tuple[int, Decimal] | None:
    years = sorted(int(y) for y in series)
    if not years:
        return None
    y = year if year in years else max(y for y in years if y <= year) if any(y <= year for y in years) else years[0]
    return y, Decimal(str(series[y]))


def _scale_targets(rep, year, targets, populations):
    out = []
    for label, key, att_n, loaded_share, statewide, small in populations:
        t = _target_for(targets["scale_targets"][key], year)
        tgt = f"{pct(t[1], 0)} ({t[0]}{'' if t[0] == year else ', the last year with a target'})" if t else ""
        sw = _ratio(att_n, statewide) if statewide else None
        out.append([label, HIDDEN if small else pct(loaded_share) if loaded_share is not None else "",
                    "" if sw is None else (HIDDEN if small else pct(sw)), tgt])
    rep.tables.append(Table("scale_targets", "Scale vs the APM scale targets (T11)",
                            ["population", "share of persons loaded", "share of statewide lives (supplied)",
                             "APM scale target"], out,
                            note="The APM targets are shares of statewide lives; the share of persons loaded is an "
                                 "upper bound shown for monitoring. Supply statewide_lives to compare like with like."))


def _growth(con, rep, year, targets, inputs):
    t = table(con, "tcoc_member_month")
    t = t.filter(t.performance_year <= year)  # the report's year and the years before it
    got = rows(t.group_by(["performance_year", "payer"]).aggregate(c=t.ffs_paid_cents.sum(), n=t.count())
               .order_by(["performance_year", "payer"]))
    by_year: dict[int, dict[str, tuple[int, int]]] = {}
    for r in got:
        if r["n"]:
            by_year.setdefault(int(r["performance_year"]), {})[r["payer"]] = (int(r["c"]), int(r["n"]))

    def per_capita(parts) -> int:
        c, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
        return int((Decimal(c) * 12 / Decimal(n)).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def growth(first: int, last: int, payers) -> str | None:
        a = per_capita([by_year[first][p] for p in payers])
        b = per_capita([by_year[last][p] for p in payers])
        if a <= 0:
            return None
        cagr = (Decimal(b) / Decimal(a)) ** (Decimal(1) / Decimal(last - first)) - 1
        return f"{pct(cagr, 2)} average annual growth {first}-{last}"

    out = []
    for y, parts in sorted(by_year.items()):
        c, n = sum(p[0] for p in parts.values()), sum(p[1] for p in parts.values())
        out.append([str(y), ", ".join(sorted(parts)), count(n), usd(c), usd(per_capita(parts.values()))])
    g = targets["tcoc_growth"]
    growth_text = "not computable: needs at least two performance years run"
    mix = ""
    years = sorted(by_year)
    if len(years) >= 2:
        first, last = years[0], years[-1]
        # a payer in one of the two years only changes the population's mix (a Medicare member
        # costs about twice a commercial one): the growth is taken over the payers of both years
        both = sorted(by_year[first].keys() & by_year[last].keys())
        if by_year[first].keys() != by_year[last].keys():
            mix = (f" The years cover different payers ({first}: {', '.join(sorted(by_year[first]))}; {last}: "
                   f"{', '.join(sorted(by_year[last]))}), so the growth is that of the payers in both "
                   f"({', '.join(both) or 'none'}).")
        if not both:
            growth_text = f"not computable: {first} and {last} have no payer in common"
        else:
            growth_text = growth(first, last, both) or growth_text
    rep.tables.append(Table("tcoc_growth", "TCOC per capita of the programs' members (not the statewide APM metric)",
                            ["year", "payers", "member months", "TCOC paid (FFS basis)", "per capita (per member year)"],
                            out,
                            note=f"Growth: {growth_text}; APM target {pct(g['target'])}, ceiling {pct(g['ceiling'])}. "
                                 "The APM metric is statewide all-payer TCOC per capita, which needs statewide "
                                 "denominators; this is the growth of the programs' members only (member months "
                                 f"counted per program).{mix}"))
    rep.totals.append(("TCOC per capita growth (programs' members)", growth_text))
    if inputs.national_medicare_growth is not None:
        rep.notes.append(f"National Medicare growth (supplied): {pct(inputs.national_medicare_growth, 2)}; the "
                         f"Vermont Medicare target is 0.1-0.2 percentage points below it.")


def _quality(con, rep, year):
    qr = quality_rows(con, year, _programs(con, year))
    if not qr:
        rep.notes.append("Quality has not been measured for this run (no quality_rates table).")
        return
    out = []
    for r in qr:
        h = rate_hidden(r["denominator"], r["numerator"])
        out.append([r["measure_id"], r["program_id"], HIDDEN if h else count(r["denominator"]),
                    HIDDEN if h else count(r["numerator"]), HIDDEN if h else rate_text(r)])
    rep.tables.append(Table("quality", "Quality results by program", ["measure", "program", "denominator", "numerator",
                                                                       "rate"], out))


def _programs(con, year):
    mm = of_year(table(con, "member_months"), year)
    return [r["program_id"] for r in rows(mm.select("program_id").distinct())]
