"""Engine layer: schedules requests (closed or open loop), executes them, publishes records."""
