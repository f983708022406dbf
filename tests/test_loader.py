"""Tests of qa.loader: verbatim text, HTML/PDF extraction, doc_ids, and every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import DocumentError
from qa.loader import find_document_files, load_document, load_documents

MB = 1024 * 1024


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (xref offsets computed)."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()]
    for i, text in enumerate(pages):
        stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


HTML = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Owls of the North</title></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article>
<h1>Owls of the North</h1>
<p>The snowy owl lives in the Arctic tundra and hunts lemmings during the long summer days.</p>
<p>Its white plumage hides it against the snow, and it nests on the ground in shallow scrapes.</p>
<p>Caf\xc3\xa9 owners in Troms\xc3\xb8 sometimes see it perched on fence posts near the harbour.</p>
</article>
<footer>Copyright 2024</footer>
</body></html>
"""


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reason_of(path: Path, **kwargs) -> str:
    with pytest.raises(DocumentError) as info:
        load_document(path, path.stem, **kwargs)
    assert info.value.path == str(path)
    return info.value.reason


# --- text files -----------------------------------------------------------------------------


def test_txt_is_verbatim_with_crlf_and_title(tmp_path: Path) -> None:
    raw = "  \r\nFirst line title  \r\nSecond line, caf\u00e9.\r\n\r\nLast.\r\n"
    path = write(tmp_path / "a.txt", raw.encode("utf-8"))
    doc = load_document(path, "a")
    assert doc.text == raw  # CRLF kept, nothing stripped
    assert doc.doc_id == "a"
    assert doc.title == "First line title"
    assert doc.source == str(path)


def test_md_title_drops_heading_marks_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "n.md", b"\xef\xbb\xbf## The Title\n\nBody text.\n")
    doc = load_document(path, "n")
    assert doc.text == "## The Title\n\nBody text.\n"
    assert doc.title == "The Title"


def test_title_is_truncated(tmp_path: Path) -> None:
    path = write(tmp_path / "long.txt", ("word " * 100).encode())
    assert len(load_document(path, "long").title) == 200


def test_empty_file(tmp_path: Path) -> None:
    assert "empty file" in reason_of(write(tmp_path / "e.txt", b""))


def test_whitespace_only_file(tmp_path: Path) -> None:
    assert "only whitespace" in reason_of(write(tmp_path / "w.md", b" \r\n\t\n  "))


def test_nul_bytes_are_binary(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "b.txt", b"GIF89a\x00\x01\x02 image"))
    assert "binary" in reason and "byte offset 6" in reason


def test_invalid_utf8_names_the_byte(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "l1.txt", "hello world caf\u00e9".encode("latin-1")))
    assert "not valid UTF-8" in reason and "byte offset 15" in reason


def test_invalid_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    assert "byte offset 5" in reason_of(write(tmp_path / "x.txt", b"\xef\xbb\xbfab\xff"))


def test_utf16_is_refused_clearly(tmp_path: Path) -> None:
    assert "UTF-16" in reason_of(write(tmp_path / "u.txt", "hello".encode("utf-16")))


def test_unsupported_suffix(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "report.docx", b"PK\x03\x04"))
    assert "unsupported file type '.docx'" in reason and ".txt" in reason


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "nope.txt") == "no such file or directory"
    (tmp_path / "dir.txt").mkdir()
    assert "folder" in reason_of(tmp_path / "dir.txt")


def test_too_large_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:  # sparse: 300 MB on paper, nothing on disk
        f.truncate(300 * MB)

    def no_read(self: Path) -> bytes:
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    reason = reason_of(path)
    assert "too large" in reason and "300.0 MB" in reason and "50 MB limit" in reason


def test_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "k.txt", b"x" * 3000)
    assert "0.001 MB limit" in reason_of(path, max_file_mb=0.001)
    assert load_document(path, "k", max_file_mb=0.01).text == "x" * 3000


# --- HTML and PDF ---------------------------------------------------------------------------


def test_html_main_text_is_extracted(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "owls.html", HTML), "owls")
    assert "The snowy owl lives in the Arctic tundra" in doc.text
    assert "Caf\u00e9 owners in Troms\u00f8" in doc.text
    assert "<p>" not in doc.text
    assert doc.title == "Owls of the North"
    start = doc.text.index("Its white plumage")
    assert doc.text[start : start + 17] == "Its white plumage"


def test_html_without_text(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.htm", b"<html><head><title>x</title></head><body></body></html>")
    assert "no text extracted" in reason_of(path)


def test_html_whitespace_only(tmp_path: Path) -> None:
    assert "only whitespace" in reason_of(write(tmp_path / "sp.html", b"   \n "))


def test_pdf_pages_joined_by_blank_line(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "p.pdf", make_pdf(["Hello PDF world.", "Second page here."])), "p")
    assert doc.text == "Hello PDF world.\n\nSecond page here."
    assert doc.title == ""


def test_damaged_pdf(tmp_path: Path) -> None:
    assert "cannot read PDF" in reason_of(write(tmp_path / "bad.pdf", b"%PDF-1.4\nthis is not a pdf at all"))


def test_pdf_without_text(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as f:
        writer.write(f)
    assert "no text extracted from PDF" in reason_of(path)


# --- finding files --------------------------------------------------------------------------


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    root = tmp_path / "seeds"
    write(root / "b.txt", b"Bee.\n")
    write(root / "news" / "a.txt", b"News A.\n")
    write(root / "news" / "deep" / "c.md", b"# C\n\nDeep.\n")
    write(root / "page.html", HTML)
    write(root / "notes.docx", b"PK")  # unsupported: ignored inside folders
    write(root / ".hidden.txt", b"Hidden.\n")
    write(root / ".git" / "x.txt", b"Hidden folder.\n")
    return root


def test_doc_ids_from_nested_folders(seeds: Path) -> None:
    pairs = find_document_files([seeds])
    assert [doc_id for _, doc_id in pairs] == ["b", "news/a", "news/deep/c", "page"]
    assert pairs[1][0] == seeds / "news" / "a.txt"


def test_file_argument_uses_its_stem(seeds: Path) -> None:
    pairs = find_document_files([str(seeds / "news" / "deep" / "c.md"), seeds / "b.txt"])
    assert pairs == [(seeds / "b.txt", "b"), (seeds / "news" / "deep" / "c.md", "c")]


def test_same_file_twice_is_kept_once(seeds: Path) -> None:
    pairs = find_document_files([seeds, seeds / "b.txt"])
    assert [doc_id for _, doc_id in pairs] == ["b", "news/a", "news/deep/c", "page"]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file or directory"):
        find_document_files([tmp_path / "missing"])


def test_duplicate_doc_id_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", b"one")
    write(tmp_path / "d" / "a.md", b"two")
    with pytest.raises(DocumentError) as info:
        find_document_files([tmp_path / "d"])
    message = str(info.value)
    assert "a.txt" in message and "a.md" in message and "'a'" in message


# --- loading many ---------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    write(root / "a.txt", b"Alpha.\r\n")
    write(root / "b.txt", b"bad \xff byte")
    write(root / "c.md", b"")
    write(root / "d.pdf", make_pdf(["Delta page."]))
    return root


def test_skip_reports_bad_files_and_keeps_going(mixed: Path) -> None:
    errors: list[DocumentError] = []
    docs = load_documents([mixed], report=errors.append)
    assert [d.doc_id for d in docs] == ["a", "d"]
    assert docs[0].text == "Alpha.\r\n"
    assert docs[1].source == str(mixed / "d.pdf")
    assert [Path(e.path).name for e in errors] == ["b.txt", "c.md"]
    assert "UTF-8" in errors[0].reason and "empty" in errors[1].reason


def test_stop_raises_on_first_bad_file(mixed: Path) -> None:
    with pytest.raises(DocumentError, match="b.txt: not valid UTF-8"):
        load_documents(mixed, on_error="stop")


def test_load_documents_accepts_one_path_and_sorts(seeds: Path) -> None:
    docs = load_documents(str(seeds))
    assert [d.doc_id for d in docs] == ["b", "news/a", "news/deep/c", "page"]
    assert docs[2].title == "C"


def test_bad_on_error_value(seeds: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        load_documents([seeds], on_error="ignore")
