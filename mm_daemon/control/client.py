"""A small HTTP client of the control API (what `mm-daemon ctl` uses): one request, the answer
read as the API's models, errors as `ClientError` with the exit code a script can test."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mm_daemon.control import api

__all__ = [
    "EXIT_AUTH",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "ClientError",
    "ControlClient",
]

EXIT_OK = 0
EXIT_REFUSED = 1  # the daemon said no (starting, unknown market, invalid config), or a kill left
# orders open
EXIT_AUTH = 3  # 401 or 403: no token, a wrong one, or none configured at the daemon
EXIT_UNREACHABLE = 4  # nothing answered, or the daemon failed (5xx)

_Model = TypeVar("_Model", bound=BaseModel)

REQUEST_SECONDS = 15.0  # a kill waits up to 5 s for the venues' cancels


class ClientError(Exception):
    """The request did not succeed: `exit_code` says how (see the EXIT_ constants)."""

    def __init__(self, message: str, exit_code: int, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.problems = problems or []


@dataclass(frozen=True, slots=True)
class ControlClient:
    url: str  # the daemon's base URL, e.g. http://127.0.0.1:9464
    token: str | None = None
    timeout_s: float = REQUEST_SECONDS

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  an http(s) URL the operator gives
            self.url.rstrip("/") + path, data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310  as above
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"no answer from {self.url}: {reason}", EXIT_UNREACHABLE) from None

    def status(self) -> api.Status:
        return _parse(api.Status, self._request("GET", "/status"))

    def action(self, action: str, body: dict[str, Any] | None = None) -> api.ActionResult:
        return _parse(api.ActionResult, self._request("POST", f"/{action}", body))


def _parse(model: type[_Model], data: Any) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ClientError(
            f"the daemon answered something this client does not read ({exc.error_count()} "
            "problem(s)); are the daemon and mm-daemon ctl the same version?",
            EXIT_UNREACHABLE,
        ) from None


def _http_error(exc: urllib.error.HTTPError) -> ClientError:
    try:
        body = api.ErrorBody.model_validate_json(exc.read())
        message, problems = body.error, body.problems
    except (ValidationError, ValueError, OSError):
        message, problems = f"HTTP {exc.code}", []
    if exc.code in (401, 403):
        return ClientError(f"{exc.code}: {message}", EXIT_AUTH, problems)
    if exc.code >= 500:
        return ClientError(f"{exc.code}: {message}", EXIT_UNREACHABLE, problems)
    return ClientError(f"{exc.code}: {message}", EXIT_REFUSED, problems)
