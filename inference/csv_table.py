"""A CSV table as a hospital exports it from a spreadsheet, read into rows (the site's reports for
training/site_engine, the case list of ``tumorchain batch``).

Spreadsheet exports vary by locale: Excel writes ';' where the decimal mark is a comma and a tab
for "Text (Tab delimited)", and saves in the Windows code page (cp1252) unless told UTF-8. So the
delimiter is the one of ',', ';' and tab that the header line uses most, the text is UTF-8 (with or
without a BOM), else cp1252, else Latin-1 (which decodes any byte), and column names are matched
without regard to case or surrounding spaces ("CT", " Report "). A report with line breaks inside
quotes spans several lines of the file: each row carries the line it starts on, as an editor shows it.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from inference.errors import InputError

DELIMITERS = (",", ";", "\t")
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def _decode(csv_path: Path) -> tuple[str, str]:
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise InputError(csv_path, f"cannot read CSV: {exc.strerror or exc}") from None
    for encoding in ENCODINGS[:-1]:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode(ENCODINGS[-1]), ENCODINGS[-1]  # Latin-1 decodes every byte


def read_csv_table(csv_path: Path, required: tuple[str, ...]) -> tuple[list[tuple[int, dict]], list[str]]:
    """([(line the row starts on, {column: value})], notes on how the file was read)."""
    text, encoding = _decode(csv_path)
    notes = []
    if encoding != "utf-8-sig":
        notes.append(f"{csv_path} is not UTF-8; read as {encoding} (a spreadsheet's Windows export)")
    header_line = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=header_line.count)
    if not header_line.count(delimiter):
        delimiter = ","
    elif delimiter != ",":
        notes.append(f"{csv_path}: columns separated by {'tab' if delimiter == chr(9) else repr(delimiter)}")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader, [])]
        lacking = [c for c in required if c not in header]
        if lacking:
            raise InputError(csv_path, f"CSV header lacks column(s) {', '.join(lacking)} (has {header})")
        rows, start = [], reader.line_num + 1
        for values in reader:
            if any(v.strip() for v in values):  # a blank line between rows is no row
                rows.append((start, dict(zip(header, values))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(csv_path, f"cannot read CSV near line {reader.line_num}: {exc}") from None
    if not rows:
        raise InputError(csv_path, "CSV has no rows")
    return rows, notes
