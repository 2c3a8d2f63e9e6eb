"""loadgen: load testing and latency profiling for LLM inference endpoints."""

import os

# numpy's OpenBLAS starts a thread per core that spins after each call; a load generator shares
# its cores with the load, so unless the user chose otherwise its maths runs on one thread
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
