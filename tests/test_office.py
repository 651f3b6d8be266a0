"""PDF and Word files, built here: their text is read, an encrypted, scanned or corrupt one is a counted skip."""

import io
from pathlib import Path

import pytest

from simrag.corpus import read_file
from simrag.office import MIN_CHARS_PER_PAGE, Unreadable, docx_text, pdf_text


def make_pdf(pages: list[list[str]], title: str = "", password: str = "") -> bytes:
    """A PDF whose pages carry `pages`' lines as real text (Helvetica), optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += [f"({escaped}) Tj", "T*"]
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    if title:
        writer.add_metadata({"/Title": title})
    if password:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    from docx import Document

    document = Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


PROSE = [
    "Kubernetes (the scheduler) places pods onto nodes that have enough free",
    "resources. A pod that requests more memory than any node offers",
    "stays pending until the cluster grows or the request is low-",
    "ered by its owner.",
]


def test_pdf_text_layer_is_read_with_lines_rejoined_and_hyphens_mended():
    title, text = pdf_text(make_pdf([PROSE, ["Second page: taints keep pods off a node."]], title="Scheduling"))
    assert title == "Scheduling"
    first, second = text.split("\n\n")
    assert first == (
        "Kubernetes (the scheduler) places pods onto nodes that have enough free resources. A pod that requests more "
        "memory than any node offers stays pending until the cluster grows or the request is lowered by its owner."
    )
    assert second == "Second page: taints keep pods off a node."


def test_pdf_with_an_empty_user_password_is_read_and_a_locked_one_is_encrypted():
    assert "Kubernetes (the scheduler)" in pdf_text(make_pdf([PROSE], password=""))[1]
    with pytest.raises(Unreadable) as locked:
        pdf_text(make_pdf([PROSE], password="s3cret"))
    assert locked.value.reason == "encrypted"


def test_pdf_without_a_text_layer_is_no_text_layer():
    with pytest.raises(Unreadable) as scanned:
        pdf_text(make_pdf([[], ["7"], []]))  # blank pages and a page number: what a scan's hidden layer holds
    assert scanned.value.reason == "no_text_layer"
    assert len("7") < MIN_CHARS_PER_PAGE * 3


def test_docx_paragraphs_headings_and_tables_in_order():
    title, text = docx_text(
        make_docx(
            "Backups", ["Snapshots run nightly at 02:00.", ""], table=[["tool", "retention"], ["restic", "30 days"]]
        )
    )
    assert title == "Backups"
    assert text == "Backups\n\nSnapshots run nightly at 02:00.\n\ntool | retention\nrestic | 30 days"


def test_a_folder_of_pdfs_and_docx_files_becomes_documents_and_counted_skips(tmp_path: Path):
    files = {
        "guide.pdf": make_pdf([PROSE], title="Scheduling"),
        "notes/backup.docx": make_docx("Backups", ["Snapshots run nightly at 02:00."]),
        "locked.pdf": make_pdf([PROSE], password="s3cret"),
        "scan.pdf": make_pdf([[]]),
        "broken.pdf": make_pdf([PROSE])[:200],
        "empty.docx": make_docx("", []),
    }
    results = {}
    for name, content in files.items():
        path = tmp_path / "corpus" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        results[name] = read_file(tmp_path / "corpus", path)
    assert [(d.doc, d.title) for d in results["guide.pdf"].documents] == [("guide.pdf", "Scheduling")]
    assert [(d.doc, d.title) for d in results["notes/backup.docx"].documents] == [("notes/backup.docx", "Backups")]
    skips = {name: dict(r.skipped) for name, r in results.items() if r.skipped}
    assert skips == {
        "locked.pdf": {"encrypted": 1},
        "scan.pdf": {"no_text_layer": 1},
        "broken.pdf": {"corrupt": 1},
        "empty.docx": {"empty": 1},
    }
