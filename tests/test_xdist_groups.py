"""`./dev test` runs the suite on two workers with ``--dist loadgroup``: tests marked
``xdist_group`` share one worker (the Spark tests one Spark session and one whole cycle, the
payments-run tests one database, and each module whose module fixture generates and loads a
population builds it once instead of once per worker). pytest-xdist tells the scheduler an
item's group by appending ``@<group>`` to its node id; pytest 9 keeps the node id elsewhere, so with it the groups were
silently ignored and each worker built the Spark session and cycle again (pyproject.toml keeps
pytest below 9). This test fails when a worker of a loadgroup run sees its group missing."""

import pytest

pytestmark = pytest.mark.xdist_group("xdist_check")


def test_a_grouped_test_carries_its_group_on_a_loadgroup_worker(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not a pytest-xdist worker of a --dist loadgroup run (./dev test runs one)")
    assert request.node.nodeid.endswith("@xdist_check"), request.node.nodeid
