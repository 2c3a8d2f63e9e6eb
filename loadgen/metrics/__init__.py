"""Metrics layer: per-request derived metrics, HDR histograms, aggregation into summaries."""
