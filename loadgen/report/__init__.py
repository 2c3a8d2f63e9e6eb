"""Report layer: everything loadgen prints or writes to files (console, JSON, JSONL, .hlog)."""
