"""The search journal: one JSON line per finished candidate, so an interrupted search resumes.

Format (JSON Lines, UTF-8):

* line 1, the header: ``{"header": <fingerprint>, "format": 2, "fingerprint": <hash>}``, where
  ``<fingerprint>`` is the JSON description of the search configuration and ``<hash>`` its short
  hash (:func:`fingerprint_hash`);
* every later line, one record: the record's own fields plus ``"fingerprint": <hash>`` (the search
  that wrote it) and ``"checksum"``, a hash of everything else on the line (:func:`checksum`).

Reading is strict (:func:`read_journal`): a record of another configuration, a checksum that does
not match its line (an edited score), a blank or unparsable line anywhere but at the very end, or a
field of the wrong type is a :class:`~spikenas.errors.SpikeNASError` naming the file and the line;
records are never mixed or silently dropped. Only a last line without its newline, left by an
interruption in the middle of a write, is dropped. The checksum detects edits and damage; it is
not a signature and does not stop a forger who recomputes it.

:class:`Journal` writes: every record is appended and flushed before :meth:`Journal.append`
returns (``fsync=True`` also forces it to disk). Without ``resume`` an existing journal is left
untouched until the first record of the new search arrives; it is then moved to
``<journal>.previous`` rather than destroyed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from spikenas.errors import SpikeNASError

log = logging.getLogger(__name__)

FORMAT = 2  # version of the line layout above
_HASH_CHARS = 16  # hex digits kept of each SHA-256


def _canonical(data: Any) -> bytes:
    """Key-order independent JSON bytes of ``data`` (what the hashes are taken over)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def fingerprint_hash(fingerprint: dict) -> str:
    """Short hash (16 hex digits of SHA-256) of a search configuration's JSON description."""
    return hashlib.sha256(_canonical(json.loads(json.dumps(fingerprint)))).hexdigest()[:_HASH_CHARS]


def checksum(fields: dict) -> str:
    """Short hash (16 hex digits of SHA-256) of a record line's fields other than ``checksum``."""
    return hashlib.sha256(_canonical({k: v for k, v in fields.items() if k != "checksum"})).hexdigest()[:_HASH_CHARS]


def header_line(fingerprint: dict) -> str:
    """The first line of a journal of the search ``fingerprint`` describes, with its newline."""
    return json.dumps({"header": fingerprint, "format": FORMAT, "fingerprint": fingerprint_hash(fingerprint)}) + "\n"


def record_line(fields: dict, fingerprint: str) -> str:
    """One record line (with its newline): ``fields`` stamped with the search's ``fingerprint`` hash and a checksum."""
    stamped = {**fields, "fingerprint": fingerprint}
    stamped["checksum"] = checksum(stamped)
    return json.dumps(stamped) + "\n"


def read_journal(path: str | Path, fingerprint: dict) -> tuple[list[dict], int]:
    """The records of the journal at ``path``, checked line by line against the search ``fingerprint``.

    :returns: the records (their fields without ``fingerprint`` and ``checksum``, in file order) and
        the byte length of the intact part of the file (shorter than the file when its last line was
        cut by an interruption; that line is dropped).
    :raises SpikeNASError: naming the file and line, if the header is not this search's, or a record
        belongs to another search, fails its checksum, or a line other than a cut last one is blank
        or not a JSON object.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SpikeNASError(f"cannot read the journal {path}: {err.strerror or err}") from err
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines.pop()  # the empty string after the final newline
    if not lines:
        raise SpikeNASError(f"cannot resume from {path}: it is empty, with no header line (delete it or run without "
                            "--resume)")
    if len(lines) == 1 and not complete:
        log.warning("%s: dropped a header cut by an interruption; the journal starts again", path)
        return [], 0
    try:
        head = json.loads(lines[0])
    except ValueError:
        head = None
    expected = fingerprint_hash(fingerprint)
    if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("fingerprint") != expected \
            or head.get("header") != json.loads(json.dumps(fingerprint)):
        raise SpikeNASError(
            f"cannot resume from {path}: it was written by a different search configuration or spikenas version "
            "(delete it or run without --resume)"
        )
    records: list[dict] = []
    offset = len(lines[0]) + 1
    for number, raw in enumerate(lines[1:], start=2):
        last_cut = number == len(lines) and not complete
        try:
            fields = _parse_record(raw, expected)
        except ValueError as err:
            if last_cut:
                log.warning("%s, line %d: dropped a record cut by an interruption", path, number)
                return records, offset
            raise SpikeNASError(f"{path}, line {number}: {err}") from None
        records.append(fields)
        offset += len(raw) + 1
    return records, min(offset, len(data))


def _parse_record(raw: bytes, expected: str) -> dict:
    """The fields of one record line; ValueError saying what is wrong with it."""
    if not raw.strip():
        raise ValueError("blank line in the middle of the journal (records after it would be lost)")
    try:
        fields = json.loads(raw)
    except ValueError:
        raise ValueError(f"not a JSON record: {raw[:60].decode(errors='replace')!r}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"not a JSON object: {raw[:60].decode(errors='replace')!r}")
    if fields.get("fingerprint") != expected:
        raise ValueError(
            f"record of another search configuration (fingerprint {fields.get('fingerprint')!r}, this search "
            f"{expected!r}); journals of different searches are never mixed"
        )
    if fields.get("checksum") != checksum(fields):
        raise ValueError("checksum mismatch: the record was changed after it was written")
    return {k: v for k, v in fields.items() if k not in ("fingerprint", "checksum")}


class Journal:
    """Appends records of one search to its journal file, each flushed before :meth:`append` returns.

    :param path: the journal file (JSON Lines, format above).
    :param fingerprint: JSON description of the search configuration (the header).
    :param resume: read the records of an existing journal of the same search (:attr:`resumed`) and
        append after them; without it, or when there is no journal yet, start a new one at the first
        record, moving an existing file to ``<path>.previous``. In both cases the file is not changed
        before the first :meth:`append`.
    :param fsync: also force every record to disk (slower; flushing already survives a killed process).
    :raises SpikeNASError: if ``resume`` and the existing journal is not this search's or is damaged
        (see :func:`read_journal`).
    """

    def __init__(self, path: str | Path, fingerprint: dict, *, resume: bool = False, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.hash = fingerprint_hash(fingerprint)
        self.fsync = fsync
        self.resumed: list[dict] = []
        self._file = None
        self._intact: int | None = None  # resume: the byte length to append after (a cut last line dropped)
        if resume and self.path.exists():
            self.resumed, intact = read_journal(self.path, fingerprint)
            if intact > 0:  # 0: only a cut header, so the first record starts the journal again
                self._intact = intact
        self.count = len(self.resumed)  # records in the journal file: resumed plus appended

    @property
    def previous(self) -> Path:
        """Where an existing journal is moved when a new search (not ``resume``) writes its first record."""
        return self.path.with_name(self.path.name + ".previous")

    def _start(self) -> None:
        """Open the file for the first record: after the resumed records, or as a new journal (an
        existing file moved to :attr:`previous`). Nothing is written before this."""
        if self._intact is not None:
            if self._intact < self.path.stat().st_size:
                os.truncate(self.path, self._intact)  # drop the cut last line so appends start on a clean line
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            os.replace(self.path, self.previous)
        self._file = open(self.path, "x", encoding="utf-8")  # noqa: SIM115  (closed by close())
        self._file.write(header_line(self.fingerprint))

    def append(self, fields: dict) -> None:
        """Write one record (JSON-ready ``fields``) and flush it (and fsync it with ``fsync``)."""
        self.append_many([fields])

    def append_many(self, records: list[dict]) -> None:
        """Write several records with one write call, then flush (and fsync with ``fsync``)."""
        if not records:
            return
        if self._file is None:
            self._start()
        self._file.write("".join(record_line(fields, self.hash) for fields in records))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.count += len(records)

    def saved(self) -> str:
        """One line saying what an interrupted search leaves to ``--resume``."""
        if self.count == 0:
            return f"no candidate had finished; {self.path} was not changed"
        return f"{self.count} candidates are in {self.path}; rerun with --resume"

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        """Close the file; an interrupt (KeyboardInterrupt) leaving the block carries :meth:`saved` as
        its ``saved`` attribute, which :func:`spikenas.argparsing.main_guard` prints."""
        self.close()
        if isinstance(exc, KeyboardInterrupt) and getattr(exc, "saved", None) is None:
            exc.saved = self.saved()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # an open file does not travel; a copy in another process never writes
        return state


__all__ = ["FORMAT", "Journal", "checksum", "fingerprint_hash", "header_line", "read_journal", "record_line"]
