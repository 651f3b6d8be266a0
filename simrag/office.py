"""The text of PDF and Word (.docx) files, or the reason a file has none.

PDF: the text layer of every page (pypdf), lines rejoined into paragraphs and words hyphenated across a
line break mended. A PDF locked with a password is `encrypted` (one with an empty user password, which
only restricts printing or copying, is read); a PDF whose pages carry no text (a scan, images only) is
`no_text_layer`, since reading it would need OCR. Word: the paragraphs, headings and tables of the body
in document order (python-docx). A password-protected .docx is an OLE container, not a zip: `encrypted`.
Anything either library cannot parse is `corrupt`.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

# Under this many characters of text per page on average, a PDF is taken as scanned: page numbers and
# running heads of a scan's hidden layer stay below it, a page of prose runs to thousands.
MIN_CHARS_PER_PAGE = 20
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: an encrypted Office file, or a legacy .doc
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")


class Unreadable(Exception):
    """A file with no text to give; `reason` is the skip reason counted by `prepare`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _paragraphs(page_text: str) -> str:
    """Lines of a PDF page rejoined: a hyphen at a line's end mended, single line breaks made spaces."""
    text = page_text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    return _LINE_BREAK.sub(" ", text)


def pdf_text(raw: bytes) -> tuple[str, str]:
    """(title, text) of a PDF's bytes; raises `Unreadable` with the reason it has none."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted", "encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
        title = str(metadata.title or "") if metadata else ""
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise Unreadable("corrupt", f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not pages:
        raise Unreadable("corrupt", "a PDF without pages")
    text = "\n\n".join(_paragraphs(page).strip() for page in pages if page.strip())
    if len(text) < MIN_CHARS_PER_PAGE * len(pages):
        raise Unreadable("no_text_layer", f"no text layer on its {len(pages)} page(s) (scanned? OCR it first)")
    return title.strip(), text


def _table_text(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = [cell.text.strip() for cell in row.cells]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def docx_text(raw: bytes) -> tuple[str, str]:
    """(title, text) of a .docx file's bytes; raises `Unreadable` with the reason it has none."""
    import zipfile

    from docx import Document as open_docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    if raw.startswith(_OLE_SIGNATURE):
        raise Unreadable("encrypted", "password-protected (or legacy .doc) Word file: an OLE container, not a .docx")
    try:
        document = open_docx(io.BytesIO(raw))
        blocks, title = [], str(document.core_properties.title or "")
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                if not title and block.style is not None and block.style.name in ("Title", "Heading 1"):
                    title = block.text
                blocks.append(block.text.strip())
            elif isinstance(block, Table):
                blocks.append(_table_text(block))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, SyntaxError) as exc:  # lxml: SyntaxError
        raise Unreadable("corrupt", f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    return title.strip(), "\n\n".join(block for block in blocks if block)
