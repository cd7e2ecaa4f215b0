"""DIMSE associations with failures told apart, and C-ECHO.

pynetdicom reports a failed association as "not established"; the user needs to know why. Before
associating we open a plain TCP connection (what a refused or unreachable PACS fails on), then
classify the association's outcome: rejected (with the PACS's reason, e.g. the called AE title is
not recognised), timed out (no answer within ``timeout_s``) or aborted.
"""
from __future__ import annotations

import socket
import ssl
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from inference.pacs.connection import PacsConnection, PacsError
from inference.pacs.privacy import quiet_pynetdicom

VERIFICATION = "1.2.840.10008.1.1"


def _tls_args(conn: PacsConnection):
    if not conn.tls:
        return None
    ctx = ssl.create_default_context(cafile=conn.tls_ca_file or None)
    return ctx, conn.host


def check_reachable(conn: PacsConnection) -> None:
    """PacsError('refused' | 'timeout' | 'unreachable') when no TCP connection opens; 'tls' when
    the TLS handshake fails."""
    try:
        with socket.create_connection((conn.host, int(conn.port)), timeout=conn.timeout_s) as sock:
            if conn.tls:  # the handshake too: a certificate problem is a TLS error, not an "abort"
                ctx, host = _tls_args(conn)
                with ctx.wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLCertVerificationError as exc:
        raise PacsError("tls", f"{conn.where()}: the PACS's certificate is not trusted ({exc.verify_message}); "
                        "set the CA file") from None
    except ssl.SSLError as exc:
        raise PacsError("tls", f"{conn.where()}: TLS handshake failed ({exc.reason or exc})") from None
    except ConnectionRefusedError:
        raise PacsError("refused", f"{conn.where()}: connection refused. Is the PACS running, and is "
                        f"{conn.port} its DICOM port?") from None
    except (socket.timeout, TimeoutError):
        raise PacsError("timeout", f"{conn.where()}: no answer within {conn.timeout_s:g} s when connecting "
                        "(a firewall, or the wrong host)") from None
    except OSError as exc:
        raise PacsError("unreachable", f"{conn.where()}: cannot connect ({exc.strerror or exc})") from None


def no_delay(event) -> None:
    """EVT_CONN_OPEN handler: switch Nagle's algorithm off on the association's socket. pynetdicom
    leaves it on, and then each small DIMSE response waits for the peer's delayed ACK (~40 ms):
    a C-GET ran at about 20 images/s whatever their size (benchmarks/bench_pacs.py)."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # not a TCP socket (or already gone): nothing to tune
        pass


def new_ae(conn: PacsConnection):
    from pynetdicom import AE

    quiet_pynetdicom()
    ae = AE(ae_title=conn.calling_ae)
    t = float(conn.timeout_s)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = t
    return ae


@contextmanager
def association(conn: PacsConnection, ae, *, evt_handlers=None, ext_neg=None) -> Iterator:
    """An established association with the PACS (released afterwards, aborted on error);
    PacsError saying why otherwise. ``ae`` carries the requested contexts."""
    from pynetdicom import evt
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    conn.checked()
    check_reachable(conn)
    rejection = []  # the A-ASSOCIATE-RJ PDU itself: pynetdicom sometimes reports the close that
    #                 follows a rejection as an abort, and the user must hear "AE title rejected"

    def on_pdu(event):
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejection.append(event.pdu)
    t0 = time.monotonic()
    try:
        assoc = ae.associate(conn.host, int(conn.port), ae_title=conn.called_ae,
                             evt_handlers=list(evt_handlers or []) + [(evt.EVT_PDU_RECV, on_pdu),
                                                                      (evt.EVT_CONN_OPEN, no_delay)],
                             ext_neg=ext_neg, tls_args=_tls_args(conn))
    except ssl.SSLError as exc:
        raise PacsError("tls", f"{conn.where()}: TLS failed ({exc.reason or exc})") from None
    if not assoc.is_established:
        raise _why_not_established(conn, assoc, time.monotonic() - t0, rejection[0] if rejection else None)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _why_not_established(conn: PacsConnection, assoc, elapsed: float, rj=None) -> PacsError:
    if assoc.is_rejected or rj is not None:
        rsp = rj if rj is not None else getattr(assoc.acceptor, "primitive", None)
        reason = getattr(rsp, "reason_str", "") if rsp is not None else ""
        source = getattr(rsp, "source", getattr(rsp, "result_source", None))
        diagnostic = getattr(rsp, "reason_diagnostic", getattr(rsp, "diagnostic", None))
        hint = ""
        if source == 1 and diagnostic == 7:
            hint = f" Check the called AE title ({conn.called_ae!r})."
        elif source == 1 and diagnostic == 3:
            hint = f" The PACS does not accept our AE title ({conn.calling_ae!r}); ask for it to be registered."
        return PacsError("rejected", f"{conn.where()}: the PACS rejected the association"
                         f"{': ' + reason if reason else ''}.{hint}")
    if elapsed >= 0.9 * float(conn.timeout_s):
        return PacsError("timeout", f"{conn.where()}: no answer to the association request within "
                         f"{conn.timeout_s:g} s")
    return PacsError("aborted", f"{conn.where()}: the PACS closed the connection during the association "
                     "(it may not accept this AE title or any of the proposed services)")


def dropped(conn: PacsConnection, what: str, assoc) -> PacsError:
    """The error for a DIMSE exchange that got no valid answer (empty status)."""
    if assoc.is_aborted:
        return PacsError("aborted", f"{conn.where()}: the connection was dropped during {what}")
    return PacsError("timeout", f"{conn.where()}: no answer during {what} within {conn.timeout_s:g} s "
                     "(or the connection was dropped)")


@dataclass
class EchoResult:
    ok: bool
    ms: float
    message: str


def echo(conn: PacsConnection) -> EchoResult:
    """C-ECHO (DIMSE) or a QIDO-RS probe (DICOMweb); PacsError saying what failed."""
    t0 = time.perf_counter()
    if conn.protocol == "dicomweb":
        from inference.pacs.dicomweb import probe

        probe(conn)
    else:
        ae = new_ae(conn)
        ae.add_requested_context(VERIFICATION)
        with association(conn, ae) as assoc:
            status = assoc.send_c_echo()
            if not status or "Status" not in status:
                raise dropped(conn, "C-ECHO", assoc)
            if status.Status != 0x0000:
                raise PacsError("refused_request", f"{conn.where()}: C-ECHO answered status 0x{status.Status:04X}")
    ms = (time.perf_counter() - t0) * 1000.0
    return EchoResult(True, ms, f"{conn.where()}: connection OK ({ms:.0f} ms)")
