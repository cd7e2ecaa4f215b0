"""A PACS connection as the user configures it, and the one error type PACS work raises.

A connection is either DIMSE (host, port, called and calling AE titles; optional TLS) or DICOMweb
(a base URL such as ``https://pacs/dicom-web``; optional CA file). ``retrieve`` says how a series
comes here: C-GET (one association, nothing to configure on the PACS), C-MOVE (the PACS connects
back to a storage SCP we start on ``move_port``; the PACS must know ``calling_ae`` at that port),
or WADO-RS (DICOMweb). Timeouts are per step (connect, association, each DIMSE or HTTP response),
so a PACS that stops answering fails after ``timeout_s``, not never.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from inference.errors import TumorChainError

PROTOCOLS = ("dimse", "dicomweb")
RETRIEVE_METHODS = ("get", "move", "wado")
#: why a PACS step failed; the Test Connection button and the CLI say it in words (PacsError.kind)
FAILURES = ("refused", "timeout", "unreachable", "rejected", "aborted", "refused_request", "incomplete",
            "http", "tls", "config")


class PacsError(TumorChainError):
    """A PACS step failed. ``kind`` is one of FAILURES; the message names the connection (never a
    patient) and what to check."""

    def __init__(self, kind: str, message: str):
        assert kind in FAILURES, kind
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class PacsConnection:
    name: str = "PACS"
    protocol: str = "dimse"
    host: str = "127.0.0.1"
    port: int = 104
    called_ae: str = "ORTHANC"
    calling_ae: str = "TUMORCHAIN"
    dicomweb_url: str = ""
    tls: bool = False
    tls_ca_file: str = ""  # "" = the system's trusted CAs
    timeout_s: float = 10.0
    retrieve: str = "get"
    move_port: int = 11113  # our storage SCP for C-MOVE (the PACS knows calling_ae at this port)
    move_bind: str = "0.0.0.0"  # where that SCP listens; tests use 127.0.0.1

    def problems(self) -> list[str]:
        """What is wrong with the settings, in words (empty when usable)."""
        out = []
        if not self.name.strip():
            out.append("the connection has no name")
        if self.protocol not in PROTOCOLS:
            out.append(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.retrieve not in RETRIEVE_METHODS:
            out.append(f"retrieve method {self.retrieve!r} is not one of {', '.join(RETRIEVE_METHODS)}")
        if self.protocol == "dicomweb" or self.retrieve == "wado":
            if not self.dicomweb_url.startswith(("http://", "https://")):
                out.append("the DICOMweb base URL must start with http:// or https://")
        if self.protocol == "dimse":
            if not self.host.strip():
                out.append("no host")
            if not 0 < int(self.port) < 65536:
                out.append(f"port {self.port} is not 1-65535")
            for what, ae in (("called", self.called_ae), ("calling", self.calling_ae)):
                if not ae.strip() or len(ae) > 16 or not ae.isascii() or "\\" in ae:
                    out.append(f"the {what} AE title {ae!r} must be 1-16 ASCII characters without a backslash")
            if self.retrieve == "move" and not 0 < int(self.move_port) < 65536:
                out.append(f"C-MOVE storage port {self.move_port} is not 1-65535")
        if self.protocol == "dicomweb" and self.retrieve != "wado":
            out.append("a DICOMweb connection retrieves with WADO-RS (retrieve = 'wado')")
        if not 0.1 <= float(self.timeout_s) <= 3600:
            out.append(f"timeout {self.timeout_s} s is not 0.1-3600 s")
        return out

    def checked(self) -> "PacsConnection":
        """Self, or PacsError('config') naming every problem."""
        if p := self.problems():
            raise PacsError("config", f"PACS connection {self.name!r}: " + "; ".join(p))
        return self

    def where(self) -> str:
        """Where it points, for messages: 'PACS (ORTHANC@host:4242)' or the URL."""
        if self.protocol == "dicomweb":
            return f"{self.name} ({self.dicomweb_url})"
        return f"{self.name} ({self.called_ae}@{self.host}:{self.port}{', TLS' if self.tls else ''})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PacsConnection":
        """Unknown keys are ignored, missing ones take the defaults, types are coerced."""
        base = cls()
        values = {}
        for f in fields(cls):
            if f.name in d:
                default = getattr(base, f.name)
                raw = d[f.name]
                if isinstance(default, bool):
                    values[f.name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
                else:
                    values[f.name] = type(default)(raw)
        return replace(base, **values)


def connections_from_json(text: str) -> list[PacsConnection]:
    """The connection list as settings keep it (a JSON list); [] for empty or unreadable text."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [PacsConnection.from_dict(d) for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def connections_to_json(connections: list[PacsConnection]) -> str:
    return json.dumps([c.to_dict() for c in connections])
