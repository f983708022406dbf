"""Synthetic API-documentation questions for the reader, from the docstrings and READMEs of installed packages.

    python eval/docs_train.py -o ~/qa-runs/docs-synth.json --exclude xmltodict,colorama,tzlocal
    qa train-reader ... ~/qa-runs/docs-synth.json:1 ...

SQuAD is Wikipedia prose: a reader trained on it alone rarely answers with a function name, an argument, a
default value or a shell command, which is what people ask of README and manual files. This script writes a
SQuAD v1.1-format file of such questions, made by templates from what installed Python distributions document
about themselves, with the answer's span checked against the context it points into:

- each public function, method or class with a one-line docstring summary that starts with a verb ("Return
  the cached controller.") is rendered as a piece of API documentation (a Markdown heading, a bullet, a
  pydoc-style block or a README sentence, chosen by a seeded coin) and asked about: "Which function returns
  the cached controller?" -> ``get_cached_controller``; "What does get_cached_controller return?" -> "the
  cached controller";
- its documented parameters (NumPy, Google and Sphinx docstring styles): "What does the timeout argument of
  connect do?" -> the parameter's description; "Which argument of connect gives the seconds to wait?" ->
  ``timeout``. (Defaults are not asked for: "What is the default of process_namespaces?" -> ``False`` taught
  the reader to answer a value where an argument's name was asked, v9a's entry in eval/results/reader-candidates.md);
- ``pip install`` / ``python -m`` lines of the distribution's README: "How do you install NAME?".

A module is an article; its entries are grouped into paragraphs of a few entries each, so that the trainer's
``--paragraph-negatives`` find other entries of the same module that do not hold the answer. The questions are
easy (their words are the docstring's), so mix the file with SQuAD at a modest weight. ``--exclude`` keeps
distributions out: those whose READMEs are evaluation documents (eval/docs, eval/docs2) must be excluded.

Measured (eval/results/reader-candidates.md, "v9a" and "v9b"): readers fine-tuned with this file answered
held-out READMEs no better than v6, and worse on the clean set eval/docs4 (v9a -7.3 F1, interval below zero):
the questions teach one answer shape, a Python identifier cut at the first symbol. Kept to reproduce those runs,
not as a recipe.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

#: The READMEs of eval/docs (docs-gold.jsonl) and eval/docs2 (docs2-gold.jsonl), and this project.
DEFAULT_EXCLUDE = ("python-dotenv", "threadpoolctl", "rich", "xmltodict", "colorama", "tzlocal", "qa")
SKIP_PARTS = {"tests", "test", "testing", "_vendor", "vendor", "vendored", "examples", "benchmarks", "_tests"}
MAX_SOURCE = 400_000  # characters; larger files are generated code
MAX_PARAGRAPH = 1400  # characters of rendered entries per paragraph
MAX_QUESTION_WORDS = 30  # (and 4 characters a word): a longer question is a docstring paragraph, not a question

# Imperative verbs a docstring summary starts with ("Return the ..."), for the third person ("returns").
VERBS = frozenset("""
add append apply acquire build calculate call cancel check clear close combine compare compile compute configure
connect construct convert copy count create decode delete determine disable dump emit enable encode ensure
evaluate execute export extract fetch fill filter find flush format generate get handle initialize insert install
iterate join list load lock look make map mark match merge normalize open parse perform print process produce
raise read register release reload remove render replace reset resolve restore return run save search select
send serialize set show sort split start stop store strip test tell transform translate truncate try unregister
update validate wait wrap write yield""".split())


@dataclass(frozen=True, slots=True)
class Entry:
    """A documented callable: how it is named and called, and what its docstring says."""

    kind: str  # function, method, class
    name: str  # the name asked for: "parse" or "Parser.feed"
    signature: str  # "(data, strict=False)"; "" for a class without __init__ arguments
    summary: str  # the docstring's first paragraph on one line
    params: tuple[tuple[str, str], ...]  # (name, description) from the docstring


@dataclass(frozen=True, slots=True)
class QA:
    question: str
    answer: str
    start: int  # offset of the answer in its paragraph's context


def third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?(?<!e\.g)(?<!i\.e)(?<!etc)[.!?])(\s|$)", text)
    return (m.group(1) if m else text).rstrip(".!? ")


def _signature(args: ast.arguments, drop_self: bool) -> str:
    parts: list[str] = []

    def add(a: ast.arg, d: ast.expr | None) -> None:
        parts.append(a.arg if d is None else f"{a.arg}={ast.unparse(d)}")

    positional = [*args.posonlyargs, *args.args]
    if drop_self and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    for a, d in zip(positional, [None] * (len(positional) - len(args.defaults)) + list(args.defaults), strict=True):
        add(a, d)
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        parts.append("*")
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        add(a, d)
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return "(" + ", ".join(parts) + ")"


_NUMPY_HEAD = re.compile(r"^(Parameters|Arguments|Args|Keyword Arguments|Other Parameters)\s*:?\s*$")


def docstring_params(doc: str) -> tuple[tuple[str, str], ...]:
    """(name, description) of the parameters a NumPy, Google or Sphinx style docstring documents."""
    out: dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:[\w\[\], .|]+\s+)?(\w+):\s*(.+?)(?=\n\s*:|\n\s*\n|\Z)", doc, re.S):
        out.setdefault(m.group(1), _one_line(m.group(2)))
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if not _NUMPY_HEAD.match(lines[i].strip()):
            i += 1
            continue
        i += 1
        if i < len(lines) and set(lines[i].strip()) == {"-"}:
            i += 1
        while i < len(lines) and lines[i].strip():
            line = lines[i]
            numpy = re.match(r"^\s*\*{0,2}(\w+)\s*(?::\s+.*)?$", line) if " : " in line or ":" not in line else None
            google = None if numpy else re.match(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            indent = len(line) - len(line.lstrip())
            i += 1
            if not (numpy or google):
                continue
            desc = [google.group(2)] if google else []
            while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent:
                desc.append(lines[i].strip())
                i += 1
            text = _one_line(" ".join(desc))
            if text:
                out.setdefault((numpy or google).group(1), text)
        i += 1
    return tuple((n, d) for n, d in out.items() if 10 <= len(d) <= 300)


def _summary(doc: str | None) -> str | None:
    if not doc:
        return None
    para = _one_line(doc.strip().split("\n\n")[0])
    if not 15 <= len(para) <= 300 or ">>>" in para or "`" in para or "::" in para:
        return None
    return para


def module_entries(source: str) -> list[Entry]:
    """The documented public functions, classes and methods of one module's source."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    entries: list[Entry] = []

    def add(node: ast.AST, kind: str, name: str, drop_self: bool) -> None:
        doc = ast.get_docstring(node)
        summary = _summary(doc)
        if summary is None:
            return
        if isinstance(node, ast.ClassDef):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            sig = _signature(init.args, True) if init else ""
        else:
            sig = _signature(node.args, drop_self)
        if len(sig) > 90:
            sig = "(...)"
        entries.append(Entry(kind, name, sig, summary, docstring_params(doc or "")))

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            add(node, "function", node.name, False)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            add(node, "class", node.name, False)
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and not sub.name.startswith("_"):
                    if any(isinstance(d, ast.Name) and d.id == "property" for d in sub.decorator_list):
                        continue
                    add(sub, "method", f"{node.name}.{sub.name}", True)
    return entries


def render(entry: Entry, style: str) -> tuple[str, int]:
    """The entry as documentation text, and the offset of its name in it (the span asked for)."""
    call = f"{entry.name}{entry.signature}"
    if style == "markdown":
        text, at = f"### `{call}`\n\n{entry.summary}", 5
    elif style == "bullet":
        text, at = f"- `{call}`: {entry.summary}", 3
    elif style == "pydoc":
        text, at = f"{call}\n    {entry.summary}", 0
    else:  # a README sentence: "`parse(data)` returns the tree."
        first, _, rest = entry.summary.partition(" ")
        verb = first.lower()
        if verb not in VERBS or not rest:
            return render(entry, "markdown")
        text, at = f"`{call}` {third_person(verb)} {rest}", 1
    if entry.params:
        text += "\n\nParameters:\n" + "\n".join(f"- `{n}`: {d}" for n, d in entry.params)
    return text, at


def entry_questions(entry: Entry, text: str, at: int, rng: random.Random) -> Iterator[QA]:
    """Questions about one rendered entry, with answers as offsets into ``text``."""
    short = entry.name.rsplit(".", 1)[-1]
    owner = entry.name.rsplit(".", 1)[0] if "." in entry.name else None
    name_at = at + (len(owner) + 1 if owner and text[at:at + len(entry.name)] == entry.name else 0)
    assert text[name_at:name_at + len(short)] == short, (text, entry)
    sentence = _first_sentence(entry.summary)
    first, _, rest = sentence.partition(" ")
    verb = first.lower()
    if rest and len(rest.split()) >= 2 and (verb in VERBS or (verb.endswith("s") and verb[:-1] in VERBS)):
        base = verb if verb in VERBS else verb[:-1]
        where = f"Which method of {owner}" if owner else f"Which {entry.kind}"
        q = rng.choice([
            f"{where} {third_person(base)} {rest}?",
            f"What {entry.kind} do I call to {base} {rest}?",
            f"How do you {base} {rest}?",
            f"{where} should I use to {base} {rest}?",
        ])
        answer = short
        after = text[name_at + len(short):name_at + len(short) + 2]
        if entry.signature == "()" and after == "()" and rng.random() < .5:
            answer = short + "()"
        yield QA(q, answer, name_at)
        if base in ("return", "get", "yield", "create", "build", "make") and entry.kind != "class":
            start = text.find(rest, name_at)
            if start >= 0 and len(rest.split()) <= 20:
                yield QA(f"What does {short} {rng.choice(['return', 'give back', 'produce'])}?", rest, start)
    if entry.kind == "class" and re.match(r"(A|An|The) \w", sentence) and 3 <= len(sentence.split()) <= 20:
        q = rng.choice([f"Which class is {sentence[0].lower()}{sentence[1:]}?",
                        f"What is the name of {sentence[0].lower()}{sentence[1:]}?"])
        yield QA(q, short, name_at)
    for pname, desc in entry.params:
        if rng.random() < .5:
            continue
        dfirst = _first_sentence(desc)
        start = text.find(f"- `{pname}`: {desc}")
        if start < 0 or not 3 <= len(dfirst.split()) <= 20:
            continue
        named = param_question(short, dfirst) if rng.random() < .5 else None
        if named:  # the argument's name from what it does
            yield QA(named, pname, start + 3)
            continue
        q = rng.choice([f"What does the {pname} argument of {short} do?",
                        f"What is the {pname} parameter of {short} for?",
                        f"What is {pname} in {short}?"])
        yield QA(q, dfirst, start + len(f"- `{pname}`: "))


def param_question(short: str, description: str) -> str | None:
    """"Which argument of F ..." asked from a parameter's first sentence, or None where it reads badly."""
    what = description.rstrip(".:; ")
    first, _, rest = what.partition(" ")
    if m := re.match(r"(?i)if true,? (.+)", what):
        return f"Which argument of {short} {m.group(1)}?"
    if m := re.match(r"(?i)whether (to |or not to )?(.+)", what):
        return f"Which argument of {short} decides whether {m.group(1) or ''}{m.group(2)}?"
    if first in ("The", "A", "An", "Number", "Maximum", "Minimum", "Path", "Name", "List") and rest:
        return f"Which argument of {short} gives {what[0].lower()}{what[1:]}?"
    return None


STYLES = ("markdown", "bullet", "pydoc", "readme")


def module_article(title: str, entries: list[Entry], rng: random.Random) -> dict | None:
    """A SQuAD article of one module: its entries rendered, a few to a paragraph, with their questions."""
    paragraphs: list[dict] = []
    style = rng.choice(STYLES)
    context, qas = "", []
    for entry in entries:
        text, at = render(entry, style)
        if len(text) > MAX_PARAGRAPH:
            continue
        if context and len(context) + 2 + len(text) > MAX_PARAGRAPH:
            paragraphs.append({"context": context, "qas": qas})
            context, qas = "", []
        offset = len(context) + 2 if context else 0
        context = f"{context}\n\n{text}" if context else text
        for qa in entry_questions(entry, text, at, rng):
            start = offset + qa.start
            assert context[start:start + len(qa.answer)] == qa.answer, (qa, context)
            if len(qa.question.split()) > MAX_QUESTION_WORDS or len(qa.question) > 4 * MAX_QUESTION_WORDS:
                continue
            qas.append({"question": qa.question, "answers": [{"text": qa.answer, "answer_start": start}]})
    if context:
        paragraphs.append({"context": context, "qas": qas})
    if not any(p["qas"] for p in paragraphs):
        return None
    return {"title": title, "paragraphs": paragraphs}


_COMMAND = re.compile(r"^[ \t>$]*((?:pip|pip3|python -m pip) install [^\n`]+|python -m [\w.]+[^\n`]*)$", re.M)


def readme_article(dist: str, readme: str) -> dict | None:
    """Questions on the install and run commands of a README, over the README's blocks around them."""
    blocks = [b for b in re.split(r"\n\s*\n", readme) if b.strip()]
    paragraphs = []
    for i, block in enumerate(blocks):
        m = _COMMAND.search(block)
        if not m:
            continue
        command = m.group(1).strip()
        if len(command) > 80:
            continue
        before = blocks[i - 1] if i and len(blocks[i - 1]) < 600 else ""
        context = f"{before}\n\n{block}" if before else block
        if len(context) > MAX_PARAGRAPH:
            continue
        start = context.find(command, len(before))
        if " install " in command:
            extra = re.search(r"\[([\w,-]+)\]", command)
            target = command.split(" install ", 1)[1].split()[0].strip("\"'")
            q = (f"How do you install {dist} with the {extra.group(1)} extra?" if extra
                 else f"How do you install {dist}?" if dist.lower() in command.lower() else
                 f"Which command installs {target}?")
        else:
            q = f"Which command runs {command.split()[2]} from the command line?"
        paragraphs.append({"context": context, "qas": [
            {"question": q, "answers": [{"text": command, "answer_start": start}]}]})
    return {"title": f"{dist} README", "paragraphs": paragraphs} if paragraphs else None


def distributions(site_packages: Path) -> Iterator[tuple[str, list[tuple[str, Path]], str]]:
    """(name, [(module, path)], README text) of each distribution installed in ``site_packages``."""
    for info in sorted(site_packages.glob("*.dist-info")):
        meta_path = info / "METADATA"
        record = info / "RECORD"
        if not meta_path.is_file() or not record.is_file():
            continue
        meta = Parser().parsestr(meta_path.read_text(encoding="utf-8", errors="replace"))
        name = meta.get("Name", info.name.split("-")[0])
        modules = []
        for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
            rel = line.split(",", 1)[0]
            if not rel.endswith(".py") or rel.startswith(".."):
                continue
            parts = Path(rel).with_suffix("").parts
            if SKIP_PARTS.intersection(parts) or any(p.startswith("_") and p != "__init__" for p in parts):
                continue
            path = site_packages / rel
            if path.is_file():
                modules.append((".".join(p for p in parts if p != "__init__"), path))
        payload = meta.get_payload()
        yield name, sorted(modules), payload if isinstance(payload, str) else ""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build(site_packages: Path, exclude: Iterable[str], per_package: int, seed: int) -> tuple[list[dict], dict]:
    """The articles of every distribution not excluded, at most ``per_package`` questions each."""
    skip = {normalize(e) for e in exclude}
    data: list[dict] = []
    stats = {"distributions": 0, "articles": 0, "questions": 0}
    for dist, modules, readme in distributions(site_packages):
        if normalize(dist) in skip:
            continue
        rng = random.Random(f"{seed}:{normalize(dist)}")
        articles = []
        for module, path in modules:
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if len(source) > MAX_SOURCE:
                continue
            entries = module_entries(source)
            article = module_article(module, entries, rng) if entries else None
            if article:
                articles.append(article)
        readme_art = readme_article(dist, readme)
        if readme_art:
            articles.append(readme_art)
        # At most per_package questions: whole articles in a seeded order, so a few vast libraries do not dominate.
        rng.shuffle(articles)
        kept, count = [], 0
        for article in articles:
            n = sum(len(p["qas"]) for p in article["paragraphs"])
            if count + n > per_package and kept:
                continue
            kept.append(article)
            count += n
        for article in kept:
            for p_i, p in enumerate(article["paragraphs"]):
                for q_i, q in enumerate(p["qas"]):
                    q["id"] = f"{normalize(dist)}/{article['title']}/{p_i}/{q_i}"
        if kept:
            stats["distributions"] += 1
            stats["articles"] += len(kept)
            stats["questions"] += count
            data.extend(kept)
    return data, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, type=Path, help="SQuAD v1.1-format JSON file to write")
    ap.add_argument("--site-packages", type=Path, default=Path(sysconfig.get_paths()["purelib"]),
                    help="folder of installed distributions (default: this interpreter's)")
    ap.add_argument("--exclude", default=",".join(DEFAULT_EXCLUDE),
                    help="comma-separated distributions to leave out (default: the evaluation READMEs' and qa)")
    ap.add_argument("--per-package", type=int, default=150, help="most questions from one distribution")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    if not args.site_packages.is_dir():
        print(f"error: --site-packages {args.site_packages} is not a folder", file=sys.stderr)
        return 2
    exclude = [e for e in args.exclude.split(",") if e]
    missing = set(map(normalize, DEFAULT_EXCLUDE)) - set(map(normalize, exclude))
    if missing:
        print(f"warning: not excluding {sorted(missing)}: their READMEs are evaluation documents", file=sys.stderr)
    data, stats = build(args.site_packages, exclude, args.per_package, args.seed)
    args.output.write_text(json.dumps({"version": "docs-synth-1", "data": data}, ensure_ascii=False), encoding="utf-8")
    print(f"{args.output}: {stats['questions']} questions in {stats['articles']} articles "
          f"from {stats['distributions']} distributions (excluded: {', '.join(exclude)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
