"""The measures whose lower rate is better, by id: what the terms loader checks a program's
``inverse`` flag against without importing the measures (and Ibis) to read a terms file.
`tests/quality/test_framework.py` holds it equal to the registry's ``inverse`` measures."""

INVERSE_MEASURES = frozenset({
    "hba1c_poor_control",
    "hedis_pcr",
    "mcc_admissions_18plus",
    "qid479_readmission",
    "qid484_mcc_admissions",
})
