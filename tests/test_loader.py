"""Tests of qa.loader: verbatim text in any encoding, HTML/PDF/DOCX extraction, doc_ids, exclusions, every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.discovery import DEFAULT_EXCLUDES, find_document_files, scan_document_files
from qa.errors import DocumentError, EmptyCorpusError
from qa.indexing import build_index
from qa.loader import load_document, load_documents, read_document
from qa.store import PassageStore

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


LATIN = (
    "Le caf\u00e9 de la gare est tr\u00e8s fr\u00e9quent\u00e9. O\u00f9 est la p\u00e2tisserie ?\r\n"
    "Cr\u00e8me br\u00fbl\u00e9e \u00e0 la fran\u00e7aise, \u00e9l\u00e8ves de l'\u00e9cole pr\u00e8s du "
    "ch\u00e2teau.\r\nNo\u00ebl approche et la for\u00eat est enneig\u00e9e. Gr\u00f6\u00dfere Stra\u00dfen "
    "f\u00fchren \u00fcber die Br\u00fccke.\r\n"
)


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (LATIN.encode("latin-1"), "cp1252"),
        ("He said \u201chello\u201d \u2013 and left\u2026 it cost \u20ac5, didn\u2019t it?\n".encode("cp1252"),
         "cp1252"),
        ("\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
         "\u0421\u0435\u0433\u043e\u0434\u043d\u044f \u0445\u043e\u0440\u043e\u0448\u0430\u044f "
         "\u043f\u043e\u0433\u043e\u0434\u0430.\n".encode("cp1251"), "cp1251"),
    ],
)
def test_text_that_is_not_utf8_is_read_in_the_encoding_detected(tmp_path: Path, raw: bytes, encoding: str) -> None:
    loaded = read_document(write(tmp_path / "legacy.txt", raw), "legacy")
    assert loaded.encoding == encoding
    assert loaded.document.text == raw.decode(encoding)  # verbatim: CRLF kept, every accent right


def test_utf8_and_its_bom_are_reported_as_utf8(tmp_path: Path) -> None:
    assert read_document(write(tmp_path / "a.txt", "caf\u00e9\n".encode()), "a").encoding == "utf-8"
    bom = read_document(write(tmp_path / "b.md", b"\xef\xbb\xbf# caf\xc3\xa9\n"), "b")
    assert (bom.encoding, bom.document.text) == ("utf-8", "# caf\u00e9\n")
    html = read_document(write(tmp_path / "p.html", HTML), "p")
    assert html.encoding is None  # extracted, not decoded by us


def test_no_encoding_fits(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "noise.txt", bytes(range(1, 256)) * 4))
    assert "not valid UTF-8 at byte offset 127" in reason and "no other text encoding fits" in reason


def test_invalid_utf8_after_a_utf8_bom_is_refused_and_counts_the_bom(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "x.txt", b"\xef\xbb\xbfab\xff"))
    assert "UTF-8 byte-order mark" in reason and "not valid UTF-8 at byte offset 5" in reason


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    for codec in ("utf-16", "utf-16-be", "utf-32"):
        data = "hello caf\u00e9\n".encode(codec)
        if codec == "utf-16-be":
            data = b"\xfe\xff" + data
        loaded = read_document(write(tmp_path / "u.txt", data), "u")
        assert loaded.document.text == "hello caf\u00e9\n"
        assert loaded.encoding == codec[:6]


def test_utf16_without_a_byte_order_mark_is_binary(tmp_path: Path) -> None:
    assert "binary content" in reason_of(write(tmp_path / "u.txt", "hello".encode("utf-16-le")))


def test_rst_is_verbatim_and_its_title_skips_adornments(tmp_path: Path) -> None:
    raw = "=========\nThe Guide\n=========\n\nSection\n-------\n\nBody *text*.\r\n"
    doc = load_document(write(tmp_path / "guide.rst", raw.encode()), "guide")
    assert doc.text == raw
    assert doc.title == "The Guide"


def test_unsupported_suffix(tmp_path: Path) -> None:
    reason = reason_of(write(tmp_path / "photo.png", b"\x89PNG\r\n"))
    assert "unsupported format '.png'" in reason and ".docx" in reason


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


def make_docx(path: Path, paragraphs: list[str], title: str = "") -> Path:
    """A real .docx written by python-docx: one paragraph per item ("" makes an empty one)."""
    import docx

    word = docx.Document()
    word.core_properties.title = title
    for text in paragraphs:
        word.add_paragraph(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    word.save(str(path))
    return path


def test_docx_paragraphs_joined_by_blank_lines(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "owls.docx", ["Snowy Owls", "", "They hunt lemmings.", "   ", "Caf\u00e9\tnests."])
    loaded = read_document(path, "owls")
    assert loaded.document.text == "Snowy Owls\n\nThey hunt lemmings.\n\nCaf\u00e9\tnests."
    assert loaded.document.title == "Snowy Owls" and loaded.encoding is None
    assert load_document(make_docx(tmp_path / "t.docx", ["Body."], title="Report 7"), "t").title == "Report 7"


def test_damaged_or_empty_docx(tmp_path: Path) -> None:
    assert "cannot read DOCX" in reason_of(write(tmp_path / "bad.docx", b"PK\x03\x04 not a zip"))
    assert "no text in DOCX" in reason_of(make_docx(tmp_path / "empty.docx", ["", "  "]))


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
    write(root / "photo.png", b"PNG")  # unsupported: listed, not loaded
    write(root / ".hidden.txt", b"Hidden.\n")
    write(root / ".git" / "x.txt", b"Hidden folder.\n")
    return root


def test_doc_ids_from_nested_folders(seeds: Path) -> None:
    pairs = find_document_files([seeds])
    assert [doc_id for _, doc_id in pairs] == ["b", "news/a", "news/deep/c", "page"]
    assert pairs[1][0] == seeds / "news" / "a.txt"
    scan = scan_document_files([seeds])
    assert [(e.path, e.reason) for e in scan.unsupported] == [(str(seeds / "photo.png"), "unsupported format '.png'")]
    assert scan.excluded == ()  # hidden files and folders are skipped without a word


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
    write(root / "b.txt", b"bad \x00 byte")
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
    assert "binary" in errors[0].reason and "empty" in errors[1].reason


def test_stop_raises_on_first_bad_file(mixed: Path) -> None:
    with pytest.raises(DocumentError, match="b.txt: binary content"):
        load_documents(mixed, on_error="stop")


def test_load_documents_accepts_one_path_and_sorts(seeds: Path) -> None:
    docs = load_documents(str(seeds))
    assert [d.doc_id for d in docs] == ["b", "news/a", "news/deep/c", "page"]
    assert docs[2].title == "C"


def test_bad_on_error_value(seeds: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        load_documents([seeds], on_error="ignore")


# --- exclusion rules ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder as people have it: documents among tool folders, drafts, logs and pictures."""
    root = tmp_path / "project"
    write(root / "guide.md", b"# Guide\n")
    write(root / "notes" / "a.txt", b"A.\n")
    write(root / "notes" / "run.log", b"log\n")
    write(root / "drafts" / "d.txt", b"Draft.\n")
    write(root / "logo.png", b"PNG")
    for folder in ("node_modules/pkg", "__pycache__", "venv/lib", "dist", "build", "notes/build"):
        write(root / folder / "x.txt", b"Tool file.\n")
    return root


def ids(scan) -> list[str]:
    return [doc_id for _, doc_id in scan.files]


def test_tool_folders_are_excluded_by_default(project: Path) -> None:
    scan = scan_document_files([project])
    assert ids(scan) == ["drafts/d", "guide", "notes/a"]
    assert sorted(p.relative_to(project).as_posix() for p in scan.excluded) == [
        "__pycache__", "build", "dist", "node_modules", "notes/build", "venv"
    ]
    assert [Path(e.path).name for e in scan.unsupported] == ["logo.png", "run.log"]
    assert {"node_modules/", "build/", ".git/", ".venv/"} <= set(DEFAULT_EXCLUDES)
    everything = scan_document_files([project], default_excludes=())
    assert "node_modules/pkg/x" in ids(everything) and everything.excluded == ()


def test_exclude_rules_are_gitignore_patterns(project: Path) -> None:
    scan = scan_document_files([project], exclude=["drafts/", "*.log", "/guide.md"])
    assert ids(scan) == ["notes/a"]
    excluded = {p.relative_to(project).as_posix() for p in scan.excluded}
    assert {"drafts", "notes/run.log", "guide.md"} <= excluded
    assert [Path(e.path).name for e in scan.unsupported] == ["logo.png"]
    assert ids(scan_document_files(project, exclude="notes")) == ["drafts/d", "guide"]  # one pattern, any depth


def test_qaignore_is_read_from_each_folder_given(project: Path, tmp_path: Path) -> None:
    write(project / ".qaignore", b"# drafts stay private\ndrafts/\n!build/\n")
    other = tmp_path / "other"
    write(other / "drafts" / "o.txt", b"Other draft.\n")
    scan = scan_document_files([project, other])
    assert ids(scan) == ["build/x", "drafts/o", "guide", "notes/a", "notes/build/x"]  # other/ has no .qaignore
    assert project / "drafts" in scan.excluded
    assert "drafts/d" in ids(scan_document_files([project], read_qaignore=False))
    # --exclude comes after .qaignore, so it can take a line of it back
    assert "drafts/d" in ids(scan_document_files([project], exclude=["!drafts/"]))


def test_a_file_named_directly_ignores_the_rules(project: Path) -> None:
    draft = project / "drafts" / "d.txt"
    assert find_document_files([draft], exclude=["*.txt"]) == [(draft, "d")]


def test_bad_rules_name_their_source(project: Path) -> None:
    with pytest.raises(ValueError, match="invalid exclude pattern '!'"):
        scan_document_files([project], exclude=["!"])
    write(project / ".qaignore", b"drafts/\n!\n")
    with pytest.raises(DocumentError, match=r"\.qaignore: line 2: invalid pattern '!'"):
        scan_document_files([project])


def test_build_index_reports_exclusions_encodings_and_every_file_not_indexed(project: Path, tmp_path: Path,
                                                                            fake_embedder) -> None:
    write(project / "latin.txt", LATIN.encode("latin-1"))
    make_docx(project / "owls.docx", ["Snowy Owls", "The snowy owl hunts lemmings in the Arctic."])
    write(project / "empty.txt", b"")
    write(project / ".qaignore", b"drafts/\n")
    seen: list[DocumentError] = []
    report = build_index([project], tmp_path / "index", embedder=fake_embedder, exclude=["notes/"],
                         on_skip=seen.append)
    assert sorted(report.added) == ["guide", "latin", "owls"]
    assert report.encodings == (f"{project / 'latin.txt'}: read as cp1252",)
    assert report.skipped == (
        f"{project / 'logo.png'}: unsupported format '.png'", f"{project / 'empty.txt'}: empty file (0 bytes)"
    )
    assert [str(e) for e in seen] == list(report.skipped)
    assert sorted(report.excluded) == sorted(
        f"{project / name}/" for name in ("__pycache__", "build", "dist", "drafts", "node_modules", "notes", "venv")
    )
    with PassageStore.open(tmp_path / "index") as store:
        store.verify()
        owls = "Snowy Owls\n\nThe snowy owl hunts lemmings in the Arctic."
        for doc_id, expected in (("latin", LATIN), ("owls", owls)):
            text = store.get_document(doc_id).text
            assert text == expected
            chunks = store.chunks_of(doc_id)
            assert chunks and all(text[c.char_start : c.char_end] == c.text for c in chunks)


def test_a_folder_of_other_formats_is_an_empty_corpus_that_says_why(tmp_path: Path, fake_embedder) -> None:
    write(tmp_path / "pics" / "a.png", b"PNG")
    write(tmp_path / "pics" / "build" / "b.txt", b"Built.\n")
    with pytest.raises(EmptyCorpusError, match=r"\.docx files in .*pics; 1 file\(s\) of other formats; 1 excluded"):
        build_index([tmp_path / "pics"], tmp_path / "index", embedder=fake_embedder)


def test_load_documents_reports_other_formats_and_applies_rules(project: Path) -> None:
    errors: list[DocumentError] = []
    docs = load_documents([project], report=errors.append, exclude=["drafts/"])
    assert [d.doc_id for d in docs] == ["guide", "notes/a"]
    assert sorted(Path(e.path).name for e in errors) == ["logo.png", "run.log"]


# --- gzip-compressed files and README-like names (as /usr/share/doc holds manuals) ------------------


def _gz(path: Path, raw: bytes) -> Path:
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, mtime=0))
    return path


def test_a_compressed_document_is_read_as_the_file_inside_it(tmp_path: Path) -> None:
    raw = "# Valgrind FAQ\r\n\r\nUse --trace-children=yes, café.\n"
    doc = load_document(_gz(tmp_path / "FAQ.md.gz", raw.encode()), "FAQ")
    assert doc.text == raw  # verbatim: offsets point into the decompressed text
    assert doc.title == "Valgrind FAQ"  # read as Markdown, the suffix inside
    assert doc.source == str((tmp_path / "FAQ.md.gz").absolute())
    assert "The snowy owl" in load_document(_gz(tmp_path / "owls.html.gz", HTML), "owls").text


def test_readme_like_names_without_a_suffix_are_text(tmp_path: Path) -> None:
    assert load_document(write(tmp_path / "README", b"Build with make.\n"), "README").text == "Build with make.\n"
    assert load_document(_gz(tmp_path / "NEWS.gz", b"Version 2 is out.\n"), "NEWS").text == "Version 2 is out.\n"
    assert "unsupported format (no file name suffix)" in reason_of(write(tmp_path / "prog", b"\x7fELF"))
    assert "unsupported format '.csv.gz'" in reason_of(_gz(tmp_path / "table.csv.gz", b"a,b\n"))
    assert "unsupported format '.debian'" in reason_of(write(tmp_path / "README.Debian", b"Notes.\n"))


def test_a_bad_or_oversized_gzip_names_the_problem(tmp_path: Path) -> None:
    assert "not a valid gzip file" in reason_of(write(tmp_path / "broken.txt.gz", b"not gzip at all"))
    bomb = _gz(tmp_path / "bomb.txt.gz", b"x" * 3000)  # a few dozen bytes on disk
    assert "over the 0.001 MB limit once decompressed" in reason_of(bomb, max_file_mb=0.001)
    assert "empty file (0 bytes once decompressed)" in reason_of(_gz(tmp_path / "none.txt.gz", b""))


def test_doc_ids_drop_the_format_suffixes_and_clashes_are_named(tmp_path: Path) -> None:
    root = tmp_path / "doc"
    _gz(root / "apt" / "README.md.gz", b"# APT\n")
    _gz(root / "gdb" / "README.gz", b"GDB.\n")
    write(root / "gdb" / "NEWS", b"News.\n")
    _gz(root / "gdb" / "changelog.Debian.gz", b"Debian changes.\n")  # no known kind: listed, not loaded
    write(root / "valgrind" / "FAQ.txt", b"FAQ.\n")
    scan = scan_document_files([root])
    assert [doc_id for _, doc_id in scan.files] == ["apt/README", "gdb/NEWS", "gdb/README", "valgrind/FAQ"]
    assert [e.reason for e in scan.unsupported] == ["unsupported format '.debian.gz'"]
    assert find_document_files([root / "apt" / "README.md.gz"]) == [(root / "apt" / "README.md.gz", "README")]
    write(root / "gdb" / "README.txt", b"Another.\n")
    clashes: list[DocumentError] = []
    find_document_files([root], on_clash=clashes.append)
    assert len(clashes) == 1 and "doc_id 'gdb/README'" in clashes[0].reason
