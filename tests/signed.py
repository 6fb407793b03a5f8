"""Signing in the tests, as the services sign: every event a test hands a consumer is signed by the key of
the binding that may make it (beacon.domain.signing.expected_signer), or it is refused as unsigned.

Unit tests use a keys folder of their own (made once per session, in a temporary folder: no `make up`
needed); tests on the real infrastructure use the one `make up` made (`of_state`).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from beacon.domain import signing
from beacon.infra import keys
from beacon.infra.keys import ServiceKeys, TrustFile
from beacon.schemas.events import encode

# Regions the unit tests' events are of (any other gets its key when first asked for).
REGIONS = ("us-east", "eu-west", "asia-pacific", "mars")

E = TypeVar("E", bound=BaseModel)


@functools.cache
def unit_keys() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="beacon-test-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    keys.ensure(folder, keys.bindings(REGIONS))
    return folder


def _signer(folder: Path, role: str, region: str | None) -> keys.Signer:
    try:
        return keys.signer(folder, role, region)
    except keys.KeysError:
        keys.ensure(folder, [(role, region)])
        return keys.signer(folder, role, region)


def sign(event: E, folder: Path | None = None) -> E:
    """The event signed by the key of its own binding (the submitter its job, a region's runner its cells…)."""
    role, region = signing.expected_signer(event.model_dump(mode="json"))
    return _signer(folder or unit_keys(), role, region).sign(event)


def signed(event: BaseModel, folder: Path | None = None) -> bytes:
    """The bytes of the event as its producer sends them."""
    return encode(sign(event, folder))


def trust(folder: Path | None = None) -> TrustFile:
    return TrustFile(folder or unit_keys())


def service_keys(role: str, region: str | None = None, folder: Path | None = None) -> ServiceKeys:
    folder = folder or unit_keys()
    return ServiceKeys(_signer(folder, role, region), TrustFile(folder))
