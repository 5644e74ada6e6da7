"""allpayer.backend: Ibis's select-merge complexity score, kept per node (`_memoize_select_complexity`).

The kept score must be the number Ibis's own walk gives, so the compiled SQL stays byte for byte
what Ibis would write. Here on small expressions built to have shared subtrees and an impure
call; tests/test_pipeline.py compiles the largest stages of a real run both ways and compares
the SQL and the scores of their nodes.
"""

from __future__ import annotations

import ibis
import ibis.backends.sql.rewrites as rewrites
import ibis.expr.operations as ops

import allpayer.backend  # noqa: F401  (installs the kept score)


def test_the_kept_score_is_installed():
    assert getattr(rewrites.complexity, "_allpayer_memoized", False)
    assert rewrites.complexity._ibis_original.__module__ == "ibis.backends.sql.rewrites"


def test_scores_match_ibis_on_shared_subtrees_and_impure_calls():
    original = rewrites.complexity._ibis_original
    t = ibis.table({"a": "int64", "b": "string", "c": "float64"}, name="t")
    shared = (t.a + 1) * (t.a + 1)  # one subtree used twice: counted per use, as Ibis counts it
    u = t.mutate(x=shared, y=shared + t.a, z=t.b.upper().length())
    v = u.filter(u.x > 3).mutate(w=u.y * 2, r=ibis.random())  # an impure call scores the maximum
    w = v.group_by("b").agg(n=v.count(), s=v.w.sum()).join(t, "b")
    for expr in (shared, u, v, w, w.select("b", "n")):
        node = expr.op()
        assert rewrites.complexity(node) == original(node)
        # asked again (now from kept scores) and for nodes below it
        assert rewrites.complexity(node) == original(node)
        for child in node.__children__:
            assert rewrites.complexity(child) == original(child)
