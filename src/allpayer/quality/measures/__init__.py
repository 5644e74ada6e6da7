"""Quality measures, one module each. A module builds a `allpayer.quality.framework.Measure` and
passes it to `allpayer.quality.framework.register`; `framework.registry()` imports every module of
this package, so a new measure needs no edit here."""
