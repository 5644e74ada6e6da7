"""The employer dashboard page shows an employer's invoices exactly as its report does: a month's
invoiced member months and amount where the report shows them, "suppressed" where it hides them,
so that the page and the report read together reveal no count from 1 to 10."""

from __future__ import annotations

import re

import pytest

from tests.api.employer_view import PASSWORD, cents, employer_readers, month_key, number


@pytest.fixture(scope="module")
def readers(world):
    return employer_readers(world)


def _login(c, username: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303


def _cells(page: str, table_id: str) -> list[list[str]]:
    table = page[page.index(f'<table id="{table_id}">'):]
    table = table[table.index("<tbody>"):table.index("</table>")]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]


def _shown(cell: str, parse) -> int | None:
    """A cell's value, or None where the page hides it (whatever it writes there)."""
    return parse(cell) if re.fullmatch(r"-?\$?[\d,.]+", cell) else None


def test_employer_page_shows_what_the_report_shows(app, readers):
    from fastapi.testclient import TestClient

    assert readers
    for emp, rd in readers.items():
        with TestClient(app) as c:
            _login(c, rd.username)
            page = c.get(f"/employer/{emp}")
        assert page.status_code == 200
        report = {row: (number(rd.report[("value_payment_invoices", row, "member months")]),
                        cents(rd.report[("value_payment_invoices", row, "amount")]))
                  for (section, row, column) in rd.report if section == "value_payment_invoices"}
        months = _cells(page.text, "invoices")
        assert {month_key(m) for _program, m, _mm, _amount in months} == set(report) - {"Total"}
        for _program, month, mm, amount in months:
            assert (_shown(mm, number), _shown(amount, cents)) == report[month_key(month)], (emp, month)
        ((_program, mm, amount),) = _cells(page.text, "totals")
        assert (_shown(mm, number), _shown(amount, cents)) == report["Total"], emp
