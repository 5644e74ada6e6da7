"""Quality measures (domain.md R10): per-member and per-event results, rates, scores, care gaps.

- `allpayer.quality.framework`: the measure declaration (`Measure`), the per-program inputs a
  measure reads (`MeasureContext`), the result columns, continuous enrollment, rates.
- `allpayer.quality.valuesets`: code lists (value sets) and their loader.
- `allpayer.quality.measures`: one module per measure; each registers a `Measure`.
- `allpayer.quality.scores`: points against benchmarks, program scores, settlement modifiers.
- `allpayer.quality.care_gaps`: open gaps per practice for outreach.
- `allpayer.quality.run`: `run_quality`, which computes and writes every table.
"""
