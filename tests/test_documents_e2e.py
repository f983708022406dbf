"""Documents as people have them, end to end with the packaged models: Markdown, hard-wrapped text, HTML, DOCX and
reST in one folder; answers carry no markup and no line break, and every answer, context and passage slices back
out of the text `qa show` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli_index import cli
from test_loader import make_docx

README_MD = """\
# libsodium [![Build Status](https://github.com/jedisct1/libsodium/workflows/CI/badge.svg)](https://github.com/jedisct1/libsodium/actions) [![Coverity](https://scan.coverity.com/projects/2397/badge.svg)](https://scan.coverity.com/projects/2397)

Sodium is a new, **easy-to-use** software library for encryption, decryption,
signatures, password hashing and more. It is a portable, cross-compilable,
installable, packageable fork of [NaCl](https://nacl.cr.yp.to/), with a
compatible API, and an extended API to improve usability even further.

## Documentation

The documentation is available on [GitBook](https://doc.libsodium.org) and
built from the [libsodium-doc](https://github.com/jedisct1/libsodium-doc)
repository. Run `./configure && make check` to build and test it.
"""  # noqa: E501 - a README's badge line is this long

ZSTD_TXT = """\
Zstandard, or zstd as short version, is a fast lossless compression
algorithm, targeting real-time compression scenarios at zlib-level and
better compression ratios. Its format is stable and documented in
RFC8878. Zstandard was designed by Yann Collet at Facebook and first
released in 2016 under a dual BSD and GPLv2 licence.

The reference library offers a very wide range of speed and compression
trade-offs, and is backed by an extremely fast decoder.
"""

PYENV_RST = """\
pyenv
=====

pyenv lets you easily switch between multiple versions of Python. It is
simple, unobtrusive, and follows the UNIX tradition of `single-purpose tools
<https://en.wikipedia.org/wiki/Unix_philosophy>`_ that do one thing well.

Choosing the Python version
---------------------------

When you run a command, pyenv reads the version from the ``PYENV_VERSION``
environment variable, then from a ``.python-version`` file in the current
directory, and last from the global version file.
"""

LOUVRE_HTML = """\
<!doctype html><html><head><title>The Louvre</title></head><body>
<nav><a href="/">Home</a> | <a href="/museums">Museums</a></nav>
<article><h1>The Louvre</h1>
<p>The Louvre is the world's most-visited museum and a historic landmark in Paris, France.
It opened on 10 August 1793 with an exhibition of 537 paintings.</p>
<p>Its glass pyramid, designed by the architect <b>I. M. Pei</b>, was completed in 1989.</p>
</article></body></html>
"""

QUESTIONS = {
    "What is libsodium a fork of?": "NaCl",
    "Which RFC documents the zstd format?": "RFC8878",
    "Who designed Zstandard?": "Yann Collet",
    "Which environment variable does pyenv read the version from?": "PYENV_VERSION",
    "When did the Louvre open?": "10 August 1793",
    "What do snowy owls hunt in summer?": "lemmings and voles",
}
MARKUP = re.compile(r"[\[\]()*`<>#|]|https?:|\]\(")


@pytest.fixture(scope="module")
def folder_index(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "libsodium.md").write_text(README_MD, encoding="utf-8")
    (docs / "zstd.txt").write_text(ZSTD_TXT, encoding="utf-8")
    (docs / "pyenv.rst").write_text(PYENV_RST, encoding="utf-8")
    (docs / "louvre.html").write_text(LOUVRE_HTML, encoding="utf-8")
    make_docx(docs / "owls.docx", ["Snowy Owls", "The snowy owl is a large owl of the Arctic tundra. In summer it "
                                   "hunts lemmings and voles, and in winter it hunts ptarmigan and waterfowl."])
    index_dir = docs.parent / f"{docs.name}-index"
    cli("index", docs, "-i", index_dir)
    return index_dir


def shown(index_dir: Path, doc_id: str) -> str:
    """The stored text of a document, as `qa show --json` gives it."""
    data = json.loads(cli("show", doc_id, "--index-dir", index_dir, "--json").stdout)
    return data["text"]


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_answers_are_clean_and_slice_back_from_qa_show(folder_index, question):
    result = json.loads(cli("ask", question, "--index-dir", folder_index, "--json", "--min-score", "0").stdout)
    assert result["answers"], result
    texts = {}
    for answer in result["answers"] + result["candidates"]:
        assert "\n" not in answer["text"] and not MARKUP.search(answer["text"]), answer["text"]
        text = texts.setdefault(answer["doc_id"], shown(folder_index, answer["doc_id"]))
        assert text[answer["start"] : answer["end"]] == answer["text"]
        c0 = answer["context_start"]
        assert text[c0 : c0 + len(answer["context"])] == answer["context"]
    for passage in result["passages"]:
        text = texts.setdefault(passage["doc_id"], shown(folder_index, passage["doc_id"]))
        assert text[passage["start"] : passage["end"]] == passage["text"]
    assert result["answers"][0]["text"] == QUESTIONS[question]


def test_a_wrapped_sentence_is_one_context(folder_index):
    result = json.loads(cli("ask", "Who designed Zstandard?", "--index-dir", folder_index, "--json",
                            "--min-score", "0").stdout)
    best = result["answers"][0]
    assert best["context"] == (
        "Zstandard was designed by Yann Collet at Facebook and first\nreleased in 2016 under a dual BSD and GPLv2 "
        "licence."
    )
