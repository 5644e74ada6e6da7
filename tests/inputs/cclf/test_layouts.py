"""CCLF layouts: record lengths per packet version, fields contiguous, version detection."""

import pytest

from allpayer.inputs.cclf.layouts import FILE_TYPES, detect_version, layouts, versions

# Record lengths of the v36 packet's layout tables (end position of each file's last field).
V36 = {"CCLF1": 437, "CCLF2": 199, "CCLF3": 114, "CCLF4": 112, "CCLF5": 388, "CCLF6": 247,
       "CCLF7": 195, "CCLF8": 549, "CCLF9": 55, "CCLFA": 324, "CCLFB": 128, "CCLF0": 69}
# Before v36: the same files without the provider fields v36 appended.
V35 = {**V36, "CCLF1": 292, "CCLF2": 179, "CCLF3": 94, "CCLF4": 92, "CCLF5": 363, "CCLF6": 227}


def test_versions_available():
    assert versions() == (35, 36)


@pytest.mark.parametrize("version,lengths", [(36, V36), (35, V35), (40, V36)])
def test_record_lengths(version, lengths):
    lay = layouts(version)
    assert {t: lay[t].record_length for t in FILE_TYPES} == lengths


def test_fields_are_contiguous_and_named_once():
    for v in versions():
        for t, layout in layouts(v).items():
            ends = 0
            for f in layout.fields:
                assert f.start == ends + 1, (v, t, f.name)
                ends = f.end
            assert len(set(layout.names)) == len(layout.names)


def test_key_fields_where_the_packet_puts_them():
    a = layouts(36)["CCLF1"]
    assert (a.field("CUR_CLM_UNIQ_ID").start, a.field("CUR_CLM_UNIQ_ID").end) == (1, 13)
    assert (a.field("CLM_PMT_AMT").start, a.field("CLM_PMT_AMT").end) == (82, 98)
    assert (a.field("CLM_CNTL_NUM").start, a.field("CLM_CNTL_NUM").length) == (353, 40)
    b = layouts(36)["CCLF5"]
    assert (b.field("CLM_LINE_ALOWD_CHRG_AMT").start, b.field("CLM_LINE_ALOWD_CHRG_AMT").end) == (223, 239)


def test_detect_version_by_record_length():
    assert detect_version("CCLF1", 437) == 36
    assert detect_version("CCLF1", 292) == 35
    assert detect_version("CCLF8", 549) == 36  # unchanged files read with the latest layout
    assert detect_version("CCLF1", 300) is None
