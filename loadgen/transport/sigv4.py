"""Transport layer: HTTP with AWS Signature Version 4, signed by botocore.

Credentials come from botocore's chain (environment, shared config and credentials files,
container and instance roles) and are refreshed as botocore refreshes them. Signed headers go on
the wire only: nothing here logs or returns them.
"""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

from loadgen.errors import ConfigError
from loadgen.protocols.base import HttpRequest
from loadgen.transport.base import TransportReport
from loadgen.transport.http import HttpResponseStream, HttpTransport


def default_credentials(profile: str | None = None) -> Credentials:
    session = Session(profile=profile) if profile else Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ConfigError("no AWS credentials found (environment, ~/.aws, or an instance/container role)")
    return credentials


class SigV4Transport:
    def __init__(self, inner: HttpTransport, base_url: str, credentials: Credentials, region: str,
                 service: str = "sagemaker") -> None:  # fmt: skip
        self._inner = inner
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._region = region
        self._service = service

    def sign(self, request: HttpRequest) -> HttpRequest:
        aws_request = AWSRequest(method=request.method, url=self._base_url + request.path, data=request.body,
                                 headers=dict(request.headers))  # fmt: skip
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, self._service, self._region).add_auth(aws_request)
        return HttpRequest(request.method, request.path, tuple(aws_request.headers.items()), request.body)

    async def open(self, request: HttpRequest) -> HttpResponseStream:
        return await self._inner.open(self.sign(request))

    async def connect(self, count: int) -> int:
        return await self._inner.connect(count)

    def start_load(self) -> None:
        self._inner.start_load()

    def report(self) -> TransportReport:
        return self._inner.report()

    async def close(self) -> None:
        await self._inner.close()
