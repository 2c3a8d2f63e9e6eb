"""Transport layer: moves requests and stamped response bytes; knows no API formats."""

from loadgen.transport.base import ResponseStream, Transport, TransportFailure
from loadgen.transport.http import HttpTransport

__all__ = ["HttpTransport", "ResponseStream", "Transport", "TransportFailure"]
