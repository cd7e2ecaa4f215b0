"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) through dicomweb-client, with timeouts and TLS.

dicomweb-client uses a requests Session without a timeout, so a PACS that stops answering would
hang a retrieval for ever; the session here gives every request ``timeout_s``. HTTP and
connection errors become PacsError with the same kinds DIMSE uses.
"""
from __future__ import annotations

from contextlib import contextmanager

from inference.pacs.connection import PacsConnection, PacsError
from inference.pacs.privacy import quiet_pynetdicom


def session(conn: PacsConnection):
    """A requests Session whose every request times out after ``timeout_s`` and checks TLS."""
    import requests

    class _TimeoutAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or conn.timeout_s
            return super().send(request, **kwargs)

    s = requests.Session()
    s.mount("http://", _TimeoutAdapter())
    s.mount("https://", _TimeoutAdapter())
    s.verify = conn.tls_ca_file or True
    return s


def client(conn: PacsConnection):
    from dicomweb_client.api import DICOMwebClient

    quiet_pynetdicom()
    return DICOMwebClient(url=conn.dicomweb_url.rstrip("/"), session=session(conn))


@contextmanager
def web_errors(conn: PacsConnection, what: str):
    """Turn requests' failures inside the block into PacsError naming ``what``."""
    import requests

    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise PacsError("tls", f"{conn.where()}: TLS failed during {what} ({exc})") from None
    except requests.exceptions.ConnectTimeout:
        raise PacsError("timeout", f"{conn.where()}: no answer within {conn.timeout_s:g} s when connecting") from None
    except requests.exceptions.ReadTimeout:
        raise PacsError("timeout", f"{conn.where()}: no answer during {what} within {conn.timeout_s:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "refused" in text.lower():
            raise PacsError("refused", f"{conn.where()}: connection refused. Is the server running and the URL "
                            "right?") from None
        if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "Connection broken" in text:
            raise PacsError("aborted", f"{conn.where()}: the connection was dropped during {what}") from None
        raise PacsError("unreachable", f"{conn.where()}: cannot connect ({type(exc).__name__})") from None
    except requests.exceptions.ChunkedEncodingError:
        raise PacsError("aborted", f"{conn.where()}: the connection was dropped during {what}") from None
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        kind = "rejected" if code in (401, 403) else "http"
        raise PacsError(kind, f"{conn.where()}: {what} answered HTTP {code}") from None


def probe(conn: PacsConnection) -> None:
    """A cheap QIDO-RS request (studies, limit 1): does the server answer as DICOMweb?"""
    with web_errors(conn, "the connection test"):
        client(conn).search_for_studies(limit=1)
