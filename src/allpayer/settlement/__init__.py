"""Settlement: from a program's results and its terms to the money owed either way.

- `allpayer.settlement.mssp`: the Medicare Shared Savings Program settlement, by rule year.
- `allpayer.settlement.mssp_terms`: the dated MSSP terms (YAML in `allpayer/programs/mssp`).
- `allpayer.settlement.mssp_csv`: the CSV input and output of `allpayer mssp settle`.
"""
