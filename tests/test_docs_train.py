"""eval/docs_train.py: API-documentation questions whose answers point into their contexts, seeded, with exclusions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import load_eval_script

from qa.squad import load_squad

ROOT = Path(__file__).resolve().parents[1]

SOURCE = '''
def connect(host, timeout=10.0, *, retries=3):
    """Return a connection to the host.

    Parameters
    ----------
    host : str
        The name of the host to connect to.
    """


def _private():
    """Return something nobody should see."""


class Pool:
    """A pool of connections kept open between requests."""

    def __init__(self, size=4):
        pass

    def reset(self):
        """Clear every idle connection in the pool."""

    def fetch(self, key, default=None):
        """Get the value stored under a key.

        Args:
            key (str): The key to look the value up by.
            default: What to return when the key is missing.
        """
'''

README = """Netlib
======

Install it with pip:

    pip install netlib

Then run the self-test:

    python -m netlib.selftest --quick
"""


def _module():
    return load_eval_script("docs_train")


def _site(tmp_path: Path, name: str) -> None:
    """A fake installed distribution: its module, METADATA (with the README as body) and RECORD."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(SOURCE, encoding="utf-8")
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n{README}", encoding="utf-8")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{info.name}/METADATA,,\n", encoding="utf-8")


def test_entries_are_the_public_documented_callables_with_signatures_and_parameters():
    dt = _module()
    entries = {e.name: e for e in dt.module_entries(SOURCE)}
    assert set(entries) == {"connect", "Pool", "Pool.reset", "Pool.fetch"}
    assert entries["connect"].signature == "(host, timeout=10.0, *, retries=3)"
    assert entries["connect"].params == (("host", "The name of the host to connect to."),)  # NumPy style
    assert entries["Pool"].signature == "(size=4)"  # a class is called with its __init__'s arguments
    assert entries["Pool.fetch"].signature == "(key, default=None)"  # self dropped
    assert dict(entries["Pool.fetch"].params) == {  # Google style
        "key": "The key to look the value up by.", "default": "What to return when the key is missing."}
    assert dt.docstring_params("Do it.\n\n:param int count: how many items to take\n") == (
        ("count", "how many items to take"),)  # Sphinx style


def test_every_answer_is_its_span_and_asks_for_what_the_template_says():
    dt = _module()
    entries = dt.module_entries(SOURCE)
    seen = set()
    for style in dt.STYLES:
        for seed in range(8):
            article = dt.module_article("netlib", entries, random.Random(f"{style}{seed}"))
            for p in article["paragraphs"]:
                for q in p["qas"]:
                    a = q["answers"][0]
                    assert p["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
                    seen.add((q["question"].split()[0], a["text"]))
    answers = {a for _, a in seen}
    assert {"connect", "reset", "Pool", "a connection to the host"} <= answers
    assert "The name of the host to connect to" in answers  # a parameter's description
    assert ("Which", "host") in seen  # a parameter's name, asked from its description
    assert "10.0" not in answers  # defaults are not asked for (they taught v9a to answer values for names)
    assert not any("private" in a or "nobody" in a for a in answers)


def test_parameter_name_questions_read_as_questions_or_are_not_asked():
    dt = _module()
    assert dt.param_question("parse", "If True, expands namespaces.") == "Which argument of parse expands namespaces?"
    assert dt.param_question("run", "Whether to print progress.") == (
        "Which argument of run decides whether to print progress?")
    assert dt.param_question("connect", "The name of the host.") == (
        "Which argument of connect gives the name of the host?")
    assert dt.param_question("connect", "seconds to wait") is None


def test_build_is_seeded_leaves_out_excluded_distributions_and_loads_as_squad(tmp_path):
    dt = _module()
    _site(tmp_path, "netlib")
    _site(tmp_path, "heldout")
    data, stats = dt.build(tmp_path, ["heldout"], per_package=100, seed=3)
    assert stats["distributions"] == 1
    assert all(not a["title"].startswith("heldout") for a in data)
    again, _ = dt.build(tmp_path, ["heldout"], per_package=100, seed=3)
    assert json.dumps(again) == json.dumps(data)
    readme = next(a for a in data if a["title"] == "netlib README")
    commands = {q["answers"][0]["text"]: q["question"] for p in readme["paragraphs"] for q in p["qas"]}
    assert commands["pip install netlib"] == "How do you install netlib?"
    assert "python -m netlib.selftest --quick" in commands
    out = tmp_path / "synth.json"
    assert dt.main(["-o", str(out), "--site-packages", str(tmp_path), "--exclude", "heldout"]) == 0
    articles = load_squad(out)  # the trainer's reader accepts it, offsets included
    questions = [q for a in articles for p in a.paragraphs for q in p.questions]
    assert questions and all(q.answers and not q.is_impossible for q in questions)
    assert len({q.qid for q in questions}) == len(questions)


def test_per_package_caps_the_questions_of_one_distribution(tmp_path):
    dt = _module()
    _site(tmp_path, "netlib")
    full, stats_full = dt.build(tmp_path, [], per_package=1000, seed=3)
    capped, stats = dt.build(tmp_path, [], per_package=1, seed=3)
    assert stats["questions"] < stats_full["questions"]
    assert len(capped) == 1  # whole articles: the first is kept even if it holds more than the cap


def test_a_missing_site_packages_folder_is_a_clear_error(tmp_path, capsys):
    dt = _module()
    assert dt.main(["-o", str(tmp_path / "x.json"), "--site-packages", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(("verb", "third"), [("return", "returns"), ("match", "matches"), ("copy", "copies"),
                                             ("say", "says")])
def test_third_person(verb, third):
    assert _module().third_person(verb) == third
