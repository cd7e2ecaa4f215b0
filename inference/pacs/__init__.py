"""DICOM networking a reading room expects (no Qt): connections, C-ECHO, C-FIND / QIDO-RS,
retrieval into a local cache (C-GET, C-MOVE, WADO-RS) and an on-disk send queue (C-STORE,
STOW-RS). Every failure is a PacsError whose ``kind`` says what failed."""
from inference.pacs.connection import FAILURES, PacsConnection, PacsError, connections_from_json, connections_to_json
from inference.pacs.dimse import EchoResult, echo
from inference.pacs.query import SeriesRecord, StudyQuery, StudyRecord, find_series, find_studies
from inference.pacs.retrieve import RetrievedSeries, cached_series, retrieve_series
from inference.pacs.send_queue import SendQueue, SendReport, SendResult, default_queue_dir

__all__ = ["FAILURES", "PacsConnection", "PacsError", "connections_from_json", "connections_to_json", "EchoResult",
           "echo", "SeriesRecord", "StudyQuery", "StudyRecord", "find_series", "find_studies", "RetrievedSeries",
           "cached_series", "retrieve_series", "SendQueue", "SendReport", "SendResult", "default_queue_dir"]
