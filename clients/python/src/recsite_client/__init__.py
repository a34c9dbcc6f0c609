"""A typed Python client for the recsite recommendation API: :class:`Client` (sync) and
:class:`AsyncClient` (asyncio), both on httpx, with the same methods."""

from recsite_client._async import AsyncClient
from recsite_client._http import RetryPolicy
from recsite_client._sync import Client
from recsite_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    RecsiteError,
    ServerError,
    Unauthorized,
)

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Gone",
    "NotFound",
    "RateLimited",
    "RecsiteError",
    "RetryPolicy",
    "ServerError",
    "Unauthorized",
]
__version__ = "0.1.0"
