import json
from pathlib import Path

import pytest

from simrag import corpus
from simrag.corpus import list_files, read_file
from simrag.errors import DataError


def _one(tmp_path: Path, name: str, content: bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return read_file(tmp_path, path)


def test_reads_each_supported_format(tmp_path):
    html = _one(
        tmp_path,
        "a/page.html",
        b"<html><head><title>T</title></head><body><main><p>Hello html.</p></main></body></html>",
    )
    assert [(d.doc, d.title, d.text) for d in html.documents] == [("a/page.html", "T", "Hello html.")]
    md = _one(tmp_path, "b/readme.md", b"# Heading\n\nHello markdown.")
    assert md.documents[0].title == "Heading"
    txt = _one(tmp_path, "c.txt", b"Hello text.\n")
    assert txt.documents[0].text == "Hello text." and txt.documents[0].title == "c"
    index_md = _one(tmp_path, "tutorial/index.md", b"no heading here")
    assert index_md.documents[0].title == "tutorial"
    assert {d.source for d in html.documents + md.documents + txt.documents} == {tmp_path.name}


def test_jsonl_records_and_their_bad_lines_are_counted(tmp_path):
    lines = [
        json.dumps({"id": "pmid-1", "title": "First", "text": "An abstract."}),
        "{not json",
        json.dumps({"id": "pmid-2"}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": 3, "text": "Numeric id."}),
    ]
    result = _one(tmp_path, "docs.jsonl", "\n".join(lines).encode())
    assert [(d.doc, d.title) for d in result.documents] == [("pmid-1", "First"), ("3", "")]
    assert result.skipped == {"malformed_line": 1, "missing_field": 2}


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b"  \n\n ", "empty"),
        ("image.html", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("front-matter-only.md", b"---\ntitle: x\n---\n", "empty"),
        ("notes.odt", b"PK\x03\x04", "unsupported_type"),
        ("notes.pdf", b"%PDF-1.4\n%%EOF", "corrupt"),
        ("truncated.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>", "corrupt"),
        ("report.docx", b"PK\x03\x04 not really a zip", "corrupt"),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "encrypted"),
    ],
)
def test_unusable_files_are_skipped_with_a_reason(tmp_path, name, content, reason):
    result = _one(tmp_path, name, content)
    assert result.documents == []
    assert result.skipped == {reason: 1}


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café crème", "latin-1"),
        ("Café", "cp1252"),  # four bytes: the detector alone would say EBCDIC
        ("naïve façade résumé — déjà vu", "cp1252"),
        ("Ein Straßenname: Müller, Größe", "latin-1"),
        ("Привет мир, это тест кодировки.", "cp1251"),
        ("Zażółć gęślą jaźń, to jest test kodowania polskiego.", "cp1250"),
        ("Ελληνικά κείμενα για δοκιμή κωδικοποίησης.", "cp1253"),
        ("日本語のテキストです。これはテストです。", "shift_jis"),
    ],
)
def test_legacy_encodings_are_detected_not_replaced(tmp_path, text, encoding):
    result = _one(tmp_path, "legacy.txt", text.encode(encoding))
    assert result.documents[0].text == text
    assert result.repaired == {"legacy_charset": 1}


def test_declared_and_wide_encodings_and_the_last_resort(tmp_path, monkeypatch):
    declared = _one(
        tmp_path,
        "declared.html",
        '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9</p></body></html>'.encode("latin-1"),
    )
    assert declared.repaired == {} and declared.documents[0].text == "Café"
    utf16 = _one(tmp_path, "wide.txt", "wide text".encode("utf-16"))
    assert utf16.documents[0].text == "wide text" and utf16.repaired == {"utf16": 1}
    monkeypatch.setattr(corpus, "detect_charset", lambda raw: None)  # bytes no charset reads
    replaced = _one(tmp_path, "latin.txt", "Caf\xe9 cr\xe8me".encode("latin-1"))
    assert replaced.repaired == {"invalid_utf8": 1} and replaced.documents[0].text == "Caf\ufffd cr\ufffdme"


def test_html_too_deep_for_the_parser_is_read_as_flat_text(tmp_path):
    depth = 3000  # the HTML parser stops building the tree at 256 levels
    page = (
        "<html><head><title>Deep page</title><style>p {}</style></head><body>"
        + "<div>" * depth
        + "<p>Caf&eacute; au lait is served hot.</p><p>A second paragraph.</p><script>var x = 1;</script>"
        + "</div>" * depth
        + "</body></html>"
    )
    result = _one(tmp_path, "deep.html", page.encode())
    assert result.skipped == {} and result.repaired == {"flat_html": 1}
    doc = result.documents[0]
    assert doc.title == "Deep page"
    assert doc.text == "Café au lait is served hot.\n\nA second paragraph."
    shallow = _one(
        tmp_path, "shallow.html", page.replace("<div>" * depth, "<div>").replace("</div>" * depth, "</div>").encode()
    )
    assert shallow.repaired == {} and "Café au lait" in shallow.documents[0].text


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    path = tmp_path / "locked.md"
    path.write_text("secret")

    def deny(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    result = read_file(tmp_path, path)
    assert result.documents == [] and result.skipped == {"unreadable": 1}


def test_list_files_is_sorted_ignores_manifests_and_refuses_a_missing_folder(tmp_path):
    for name in ("b.md", "a/c.html", "MANIFEST.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path)] == ["a/c.html", "b.md"]
    with pytest.raises(DataError, match=r"corpus folder not found: .*nowhere.*dvc pull"):
        list_files(tmp_path / "nowhere")
