"""A real Orthanc PACS for the tests: its own process on 127.0.0.1, free ports, a temporary
configuration and storage, stopped afterwards. Also a loopback TCP proxy that can stall or cut a
connection (a slow or failing network between us and the PACS).

Orthanc 1.10 (Debian) has no option to bind to one address; it listens on every interface, so
the configuration admits nothing from elsewhere: HTTP remote access off, and DICOM only from the
modalities it lists, all at 127.0.0.1 (DicomCheckModalityHost, no C-ECHO/C-STORE from unknown AEs).
"""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc")
DICOMWEB_PLUGIN = next((p for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                                    "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so") if Path(p).is_file()), None)
SKIP_REASON = "the Orthanc binary is not installed (Debian packages orthanc, orthanc-dicomweb; installers/apt-packages.txt)"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made with the openssl command line."""
    cert, key = Path(folder) / "pacs.crt", Path(folder) / "pacs.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """``with Orthanc(folder, modalities={"TCWS": port}) as pacs:`` pacs.dicom_port, pacs.http_url."""

    def __init__(self, folder: Path, *, aet: str = "ORTHANC", modalities: dict[str, int] | None = None,
                 scu_timeout: int = 10, nagle: bool = False, tls: tuple[Path, Path] | None = None):
        """nagle: leave DCMTK's default (Nagle's algorithm on; each small DIMSE message then waits
        ~40 ms for a delayed ACK). By default the environment's TCP_NODELAY=1 switches it off, as
        an Orthanc deployment should (benchmarks/bench_pacs.py measures both)."""
        self.nagle = nagle
        self.tls = tls  # (certificate, private key): DICOM over TLS on the DICOM port
        self.folder = Path(folder)
        self.aet = aet
        self.modalities = modalities or {}
        self.scu_timeout = scu_timeout
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return self.http_url + "/dicom-web"

    def config(self) -> dict:
        storage = self.folder / "storage"
        return {
            "Name": "TumorChainTest", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpsVerifyPeers": False,
            "DicomCheckCalledAet": True, "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False,
            "DicomModalities": {aet.lower(): {"AET": aet, "Host": "127.0.0.1", "Port": port}
                                for aet, port in self.modalities.items()},
            "DicomScuTimeout": self.scu_timeout, "DicomScpTimeout": 30, "StorageCompression": False,
            "SaveJobs": False, "ConcurrentJobs": 2, "DicomAssociationCloseDelay": 0,
            "Plugins": [DICOMWEB_PLUGIN] if DICOMWEB_PLUGIN else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            **({"DicomTlsEnabled": True, "DicomTlsCertificate": str(self.tls[0]), "DicomTlsPrivateKey": str(self.tls[1]),
                "DicomTlsTrustedCertificates": str(self.tls[0]), "DicomTlsRemoteCertificateRequired": False}
               if self.tls else {}),
        }

    def start(self) -> "Orthanc":
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        self.log = open(self.folder / "orthanc.log", "wb")
        import os

        env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
        if not self.nagle:
            env["TCP_NODELAY"] = "1"  # read by DCMTK, Orthanc's DICOM layer
        self.proc = subprocess.Popen([ORTHANC, str(cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: "
                                   + (self.folder / "orthanc.log").read_text(errors="replace")[-2000:])
            try:
                self.rest("/system")
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not answer within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the PACS dies mid-transfer."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- REST, for setting up and checking independently of our code ---------------------------------
    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        req = urllib.request.Request(self.http_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=30) as rsp:
            body = rsp.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def upload(self, files) -> int:
        for f in files:
            self.rest("/instances", Path(f).read_bytes())
        return len(list(files)) if not isinstance(files, list) else len(files)

    def series_of_study(self, study_uid: str) -> list[dict]:
        """[{MainDicomTags..., 'Instances': n}] of a study, via REST."""
        found = self.rest("/tools/lookup", study_uid.encode(), method="POST")
        study_id = next(f["ID"] for f in found if f["Type"] == "Study")
        out = []
        for sid in self.rest(f"/studies/{study_id}")["Series"]:
            s = self.rest(f"/series/{sid}")
            out.append({**s["MainDicomTags"], "Instances": len(s["Instances"]), "ID": sid})
        return out

    def clear(self) -> None:
        for pid in self.rest("/patients"):
            self.rest(f"/patients/{pid}", method="DELETE")


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target_port``. ``stall``: accept, then never forward (a PACS
    that does not answer). ``cut_after``: close both sides once this many bytes went from the
    server to the client, or with ``upstream`` from the client to the server (a connection
    dropped mid-transfer)."""

    def __init__(self, target_port: int, *, stall: bool = False, cut_after: int | None = None, upstream: bool = False):
        """upstream: count the bytes from the client to the server instead (a send cut mid-object)."""
        self.target_port, self.stall, self.cut_after, self.upstream = target_port, stall, cut_after, upstream
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.cut = threading.Event()
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(client)
            if self.stall:
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._conns.append(server)
            sent = [0]
            threading.Thread(target=self._pump, args=(client, server, sent if self.upstream else None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None if self.upstream else sent),
                             daemon=True).start()

    def _pump(self, src, dst, counted) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counted is not None and self.cut_after is not None:
                    room = self.cut_after - counted[0]
                    if room <= len(data):
                        dst.sendall(data[:max(room, 0)])
                        self.cut.set()
                        break
                    counted[0] += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for s in self._conns:
            try:
                s.close()
            except OSError:
                pass
