"""Synthetic Vermont-like population: eligibility, claims, labs, observations and the network.

``generate(members, seed, out, fmt="parquet", years=(2022, 2023, 2024), inject_errors=0.0,
progress=None)`` writes, into the folder ``out``:

- one file per table of the input contract (`allpayer.inputs.schema`): ``eligibility``,
  ``medical_claim``, ``pharmacy_claim``, ``lab_result``, ``observation``, ``provider_roster`` and
  ``employer_group``, each as a single ``<table>.parquet`` or ``<table>.csv`` written chunk by
  chunk (a Parquet file holds one or more row groups per chunk of 50,000 people);
- ``manifest.json``: generator version, seed, members, span, file names, row counts per table and,
  with ``inject_errors``, the count of bad rows per table and kind;
- with ``inject_errors`` only, ``injected_errors.csv``: every bad row (table, row number, kind,
  column).

Types: money is decimal(18,2) in Parquet and plain ``123.45`` text in CSV; quantities are
decimal(18,3); dates are ISO dates; booleans true/false. With ``inject_errors`` the date, money
and quantity columns are text in Parquet as well, so that bad values can be represented.

The same arguments give byte-identical files: every chunk draws from its own stream spawned
from ``numpy.random.SeedSequence(seed)``, the provider network from another, and the injected
errors from a third (so a run with errors is the clean run plus the listed corruptions). Nothing
depends on the clock or on hash order. The guarantee holds for one platform and the locked
library versions: floating-point functions (``exp``) may differ in the last bit between CPUs or
numpy builds, which can change a few draws. The chunk size (50,000 people, keyword ``chunk_size``)
is part of what a seed means.

``members`` counts people (``person_id``); a person holds one ``member_id`` per coverage
(payer, plan and group), so eligibility has more member ids than people. Service dates cover the
years given (default 2022-2024); paid dates run three months longer (to 31 March after the last
year). Conventions of the synthetic data are documented in the modules: `names` (payers, plans,
employer groups, coverage mix), `roster` (network and payment models), `population` (age, sex,
coverage changes, deaths), `claims` (services, pricing, shadow claims, denials, adjustments,
claims outside enrollment), `pharmacy`, `clinical` (HbA1c, blood pressure) and `inject` (errors).

``in_network_flag`` on medical claims is true when the provider participates in (or is a
preferred provider of) the ACO network for the claim's payer on the service date.
"""

from allpayer.synth.generator import CHUNK_SIZE, GENERATOR_VERSION, Manifest, generate
from allpayer.synth.roster import RosterOptions
from allpayer.synth.span import DEFAULT_YEARS, Span

__all__ = ["generate", "Manifest", "RosterOptions", "Span", "DEFAULT_YEARS", "CHUNK_SIZE", "GENERATOR_VERSION"]
