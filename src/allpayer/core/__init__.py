"""Core stages: member months, attribution, risk scores, claims enrichment."""
