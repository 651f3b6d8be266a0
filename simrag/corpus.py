"""Reading a corpus folder into documents, counting every file it skips and why.

Supported: .html/.htm (main content), .md/.markdown (front matter and shortcodes removed),
.txt, .jsonl (one document a line: `id`, `text`, optional `title`), .pdf (its text layer) and .docx
(`simrag.office`: an encrypted, scanned or corrupt one is skipped with that reason). A file that cannot be
used is skipped with a reason, never a crash. A file that is not UTF-8 is decoded by its declared charset
(HTML), else by the charset detected from its bytes (Latin-1, Windows-1252, Shift-JIS, ...: "Café" stays
"Café"), and only when none fits are its undecodable bytes replaced. An HTML page the parser cannot walk
(nesting deeper than it allows) is read as flat text.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from simrag.errors import DataError
from simrag.extract import flat_html_text, html_to_text, markdown_to_text, tidy
from simrag.office import Unreadable, docx_text, pdf_text

log = logging.getLogger(__name__)

FORMATS = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".jsonl": "jsonl",
    ".pdf": "pdf",
    ".docx": "docx",
}
_BINARY_FORMATS = {"pdf": pdf_text, "docx": docx_text}
# Files that describe a corpus rather than belong to it.
IGNORED_NAMES = frozenset({"MANIFEST.json", ".DS_Store", ".gitignore", ".dvcignore"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)
# Without a byte-order mark, text is not UTF-16/32: a detector that says so has misread a short 8-bit file.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


@dataclass(frozen=True)
class Document:
    source: str  # the corpus folder's name, e.g. "devops"
    doc: str  # path relative to the corpus folder; for a JSON-lines record, its `id`
    title: str
    text: str


@dataclass
class FileResult:
    documents: list[Document] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> documents skipped
    repaired: Counter[str] = field(default_factory=Counter)  # reason -> files read after a repair


def list_files(corpus_dir: Path) -> list[Path]:
    """Every file under `corpus_dir`, sorted so that runs are deterministic."""
    if not corpus_dir.is_dir():
        raise DataError(
            f"corpus folder not found: {corpus_dir} (check prepare.corpus_dir in params.yaml, "
            f"or fetch it with `dvc pull {corpus_dir}.dvc`)"
        )
    return sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.name not in IGNORED_NAMES)


def decode(raw: bytes, fmt: str) -> tuple[str | None, str | None]:
    """(text, repair) of a file's bytes; text is None for binary data."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace"), "utf16"
    if b"\x00" in raw[:8192]:
        return None, None
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    if fmt == "html":
        declared = _META_CHARSET.search(raw[:4096])
        if declared:
            try:
                return raw.decode(declared.group(1).decode("ascii")), None
            except (LookupError, UnicodeDecodeError):
                pass
    detected = detect_charset(raw)
    if detected:
        return raw.decode(detected), "legacy_charset"
    return raw.decode("utf-8", errors="replace"), "invalid_utf8"


def detect_charset(raw: bytes) -> str | None:
    """The legacy charset of bytes that are not UTF-8, by charset-normalizer, or None if none decodes them.

    On short Western text the detector often ranks a rarer code page first (cp1250 or cp775 for French,
    EBCDIC for "Café"); where Windows-1252 reads the bytes about as cleanly as the best guess, it wins, as
    it does in web browsers for undeclared pages. Text that Windows-1252 cannot read cleanly (Cyrillic,
    Greek, Polish, Japanese) keeps the detector's choice."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw, cp_exclusion=_WIDE_ENCODINGS))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    for m in matches:
        if m.chaos <= least + 0.1 and (m.encoding == "cp1252" or "cp1252" in m.could_be_from_charset):
            return "cp1252"
    return str(min(matches, key=lambda m: (m.chaos, -m.coherence)).encoding)


def _jsonl_documents(source: str, path: Path, text: str, result: FileResult) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: not valid JSON, line skipped", path, number)
            result.skipped["malformed_line"] += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str) or record.get("id") in (None, ""):
            log.warning("%s:%d: a document needs `id` and `text`, line skipped", path, number)
            result.skipped["missing_field"] += 1
            continue
        title = record.get("title")
        result.documents.append(
            Document(source, str(record["id"]), title if isinstance(title, str) else "", tidy(record["text"]))
        )


def read_file(corpus_dir: Path, path: Path) -> FileResult:
    """The documents of one file, or the reason it was skipped."""
    result = FileResult()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        log.debug("%s: unsupported file type, skipped", path)
        result.skipped["unsupported_type"] += 1
        return result
    try:
        raw = path.read_bytes()
    except OSError as exc:
        log.warning("%s: cannot be read (%s), skipped", path, exc.strerror or exc)
        result.skipped["unreadable"] += 1
        return result
    if not raw.strip():
        log.warning("%s: empty file, skipped", path)
        result.skipped["empty"] += 1
        return result
    if fmt in _BINARY_FORMATS:
        try:
            title, body = _BINARY_FORMATS[fmt](raw)
        except Unreadable as exc:
            log.warning("%s: %s, skipped", path, exc)
            result.skipped[exc.reason] += 1
            return result
        return _add_document(corpus_dir, path, title, tidy(body), result)
    text, repair = decode(raw, fmt)
    if text is None:
        log.warning("%s: binary content, skipped", path)
        result.skipped["binary"] += 1
        return result
    if repair == "legacy_charset":
        log.info("%s: not UTF-8, decoded by its detected charset", path)
        result.repaired[repair] += 1
    elif repair:
        log.warning("%s: not valid UTF-8, undecodable bytes replaced", path)
        result.repaired[repair] += 1
    if fmt == "jsonl":
        _jsonl_documents(corpus_dir.name, path, text, result)
        return result
    if fmt == "html":
        title, body = html_to_text(text)
        if not body:  # a page the parser could not walk (nesting too deep): its text, flat
            body = flat_html_text(text)
            if body:
                log.warning("%s: HTML structure unreadable (nesting too deep?), read as flat text", path)
                result.repaired["flat_html"] += 1
    elif fmt == "markdown":
        title, body = markdown_to_text(text)
    else:
        title, body = "", tidy(text)
    return _add_document(corpus_dir, path, title, body, result)


def _add_document(corpus_dir: Path, path: Path, title: str, body: str, result: FileResult) -> FileResult:
    """`result` with the file's document added, titled by its folder or name where it has no title."""
    if not body:
        log.warning("%s: no text after extraction, skipped", path)
        result.skipped["empty"] += 1
        return result
    if not title:
        # "docs/tutorial/index.md" is better named by its folder than by "index"
        title = (
            path.parent.name
            if path.stem.lower() in {"index", "_index", "readme"} and path.parent != corpus_dir
            else path.stem
        )
    result.documents.append(Document(corpus_dir.name, path.relative_to(corpus_dir).as_posix(), title, body))
    return result
