"""Payments during the year: fixed prospective payments and shadow claims (R3, R4), CPR (R5),
Value Payment PMPM (R6), PHM and pay-for-improvement (R7), posted to the ledger. See
`docs/payments.md`."""
