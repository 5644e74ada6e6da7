"""Reports for every audience (employer, practice, hospital, payer, regulator) as HTML, PDF and CSV.

Each audience module builds a `Report` (tables, charts, totals, notes) from a published run's
tables; `render` writes it as HTML, `csvout` as CSV, `pdf` prints the HTML to PDF with Chromium.
`publish.render_all` renders every audience's reports of a run into ``<db>.reports/<run_id>/``.
"""

KINDS = ("employer", "practice", "hospital", "payer", "regulator")
