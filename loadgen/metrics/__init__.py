"""Metrics layer: per-request derived metrics, HDR histograms, aggregation, and the typed results
(``results``: RunSummary, SweepResult; ``comparison``: CompareResult) built from them."""
