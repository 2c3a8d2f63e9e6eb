"""Planning layer (top, beside report): from measured sweeps and hardware profiles to how many
replicas and instances a target load needs under latency SLOs, at what cost."""
