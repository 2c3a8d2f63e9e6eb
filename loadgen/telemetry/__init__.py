"""Telemetry layer (beside the engine): samples accelerators, hosts and server metrics while the
load runs, on the same monotonic clock as the request records.

Sources (``gpu`` via NVML, ``neuron`` via neuron-monitor, ``host`` and ``process`` via psutil,
``server`` via a Prometheus endpoint, ``remote`` via ``loadgen monitor``) each return ``Sample``s;
the ``Sampler`` thread polls them; ``summarize_window`` reduces a level's samples to figures.
Imports only the shared bottom modules.
"""
