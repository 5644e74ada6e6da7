"""Property: whatever the sequence of versions of a claim line, its contract rows net to the final
action's amount (zero when the last version is a cancellation), one row per version."""

import datetime as dt
import decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.inputs.cclf import read_cclf_folder

from .build import write
from .test_examples import M1, b_line, bene

amounts = st.decimals(min_value=0, max_value=5000, places=2, allow_nan=False, allow_infinity=False)
# Each later version: a cancellation of the previous one (type 1) or a restatement (type 2).
versions = st.lists(st.tuples(st.sampled_from(["1", "2"]), amounts), min_size=0, max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=amounts, later=versions)
def test_rows_net_to_the_final_action(tmp_path_factory, first, later):
    folder = tmp_path_factory.mktemp("net")
    rows, amount = [], first
    day = dt.date(2024, 2, 1)
    rows.append(b_line(1, M1, 1, f"{first:.2f}", "0", day.isoformat(), "N1"))
    for i, (kind, value) in enumerate(later, start=2):
        day += dt.timedelta(days=7)
        shown = amount if kind == "1" else value  # a cancellation repeats the cancelled amount
        rows.append(b_line(i, M1, 1, f"{shown:.2f}", kind, day.isoformat(), "N1"))
        amount = decimal.Decimal(0) if kind == "1" else value
    write(folder, {"CCLF5": rows, "CCLF8": [bene(M1)]})
    r = read_cclf_folder(folder)
    med = r.tables["medical_claim"].to_pylist()
    assert len(med) == len(rows)
    assert sorted(int(x["adjustment_sequence"]) for x in med) == list(range(len(rows)))
    assert sum(decimal.Decimal(x["paid_amount"]) for x in med) == amount
    last_cancelled = bool(later) and later[-1][0] == "1"
    finals = [x for x in r.final_action.to_pylist() if x["is_final_action"]]
    assert len(finals) == (0 if last_cancelled else 1)
