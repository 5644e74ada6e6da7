"""Every dashboard page, for every role: served or refused, never a server error, and another
organization's page is refused."""

from __future__ import annotations

import re

import pytest

from allpayer.api.auth import ROLES


def _pages(world):
    org = {k: world.users[k]["org_id"] for k in ("practice", "hospital", "employer")}
    program = world.sql("SELECT min(program_id) FROM settlement_statements")[0][0]
    return ["/", "/overview", "/settlements", f"/settlements/{program}", "/settlements/no-such-program",
            f"/practice/{org['practice']}", f"/hospital/{org['hospital']}", f"/employer/{org['employer']}",
            "/practice/someone-else", "/hospital/someone-else", "/employer/someone-else", "/login"]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_pages_never_fail(app, world, role):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        u = world.users[role]
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token},
                   follow_redirects=False)
        assert r.status_code == 303 and "allpayer_session" in r.cookies
        for page in _pages(world):
            r = c.get(page, follow_redirects=False)
            assert r.status_code in (200, 303, 403, 404), (page, r.status_code)
            if page.endswith("someone-else") and not role.startswith("aco"):
                assert r.status_code == 403, page
            if page.startswith(("/practice/", "/hospital/", "/employer/")) and not page.endswith("someone-else"):
                kind = page.split("/")[1]
                assert r.status_code == (200 if role.startswith("aco") or role == kind else 403), page


def test_pages_need_login(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        for page in ("/", "/overview", "/practice/x", "/settlements"):
            r = c.get(page, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login"


def _logged_in(c, world, role):
    u = world.users[role]
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303


def test_practice_page_lists_its_highest_risk_patients_with_their_conditions(app, world):
    """The practice's attributed patients with the highest performance-year scores, highest first,
    each with CMS's names of the HCCs behind the score, or "withheld" for a patient with a Part 2
    claim or a data-sharing opt-out."""
    import html

    from fastapi.testclient import TestClient

    practice = world.users["practice"]["org_id"]
    expected = world.sql(
        """SELECT s.program_id, s.person_id, s.risk_score FROM risk_scores s
           WHERE s.scored_for = 'performance_year'
             AND s.performance_year = (SELECT max(performance_year) FROM risk_scores)
             AND EXISTS (SELECT 1 FROM attribution a WHERE a.attributed AND a.practice_id = ?
                         AND a.program_id = s.program_id AND a.performance_year = s.performance_year
                         AND a.person_id = s.person_id)
           ORDER BY s.risk_score DESC, s.program_id, s.person_id LIMIT 25""", (practice,))
    assert expected
    held = {r[0] for r in world.sql("SELECT person_id FROM medical_claim WHERE substance_use_redacted "
                                    "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out")}
    with TestClient(app) as c:
        _logged_in(c, world, "practice")
        text = c.get(f"/practice/{practice}").text
    table = text[text.index('<table id="risk">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">\d+</td><td>([^<]*)</td><td>[^<]*</td>"
                      r"<td class=\"n\">([\d.]+)</td><td class=\"wide\">(.*?)</td></tr>", table)
    assert [(html.unescape(p), html.unescape(q)) for p, q, _s, _c in rows] == [(p, q) for p, q, _s in expected]
    for (program, person, score), (_p, _q, shown, conditions) in zip(expected, rows):
        assert shown == f"{score:.3f}"
        if person in held:
            assert "withheld" in conditions
        else:
            by_model: dict = {}
            for model, label in world.sql(
                    "SELECT model_version, label FROM risk_score_factors WHERE program_id = ? AND person_id = ? "
                    "AND factor_type = 'hcc' AND scored_for = 'performance_year'", (program, person)):
                by_model.setdefault(model, set()).add(label)
            want = "".join(f"<div><b>{m}</b> {'; '.join(sorted(ls))}</div>" for m, ls in sorted(by_model.items()))
            assert html.unescape(conditions) == (want or "—")
    assert any("<b>V28</b>" in r[3] for r in rows)  # some patients have conditions


def test_practice_page_lists_its_high_cost_patients(app, world):
    """The practice's attributed patients among the latest year's high-cost claimants, costliest
    first, with the cost by category; a withheld person (Part 2 claim or opt-out) is not listed."""
    import html

    from fastapi.testclient import TestClient

    practice = world.users["practice"]["org_id"]
    held = ("SELECT person_id FROM medical_claim WHERE substance_use_redacted "
            "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out")
    expected = world.sql(
        f"""SELECT h.program_id, h.person_id, h.cost_cents, h.inpatient_ffs_paid_cents, h.rank FROM high_cost_claimants h
           WHERE h.year = (SELECT max(year) FROM high_cost_claimants) AND h.person_id NOT IN ({held})
             AND EXISTS (SELECT 1 FROM attribution a WHERE a.attributed AND a.practice_id = ?
                         AND a.program_id = h.program_id AND a.performance_year = h.year AND a.person_id = h.person_id)
           ORDER BY h.cost_cents DESC, h.program_id, h.member_id LIMIT 25""", (practice,))
    assert expected
    with TestClient(app) as c:
        _logged_in(c, world, "practice")
        text = c.get(f"/practice/{practice}").text
        other = c.get(f"/practice/{world.sql('SELECT min(practice_id) FROM attribution WHERE practice_id <> ?', (practice,))[0][0]}")
    assert other.status_code == 403
    table = text[text.index('<table id="costly">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">\d+</td><td>([^<]*)</td><td class=\"n\">([^<]*)</td>"
                      r"<td class=\"n\">([^<]*)</td>.*?<td class=\"n\">(\d+)</td></tr>", table)
    usd = lambda c: f"${c / 100:,.2f}"  # noqa: E731
    assert [tuple(html.unescape(v) for v in r) for r in rows] == [
        (p, q, usd(cost), usd(inpatient), str(rank)) for p, q, cost, inpatient, rank in expected]
    assert "$10,000.00" in text[text.index('id="costly-note"'):]
