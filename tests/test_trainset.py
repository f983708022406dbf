"""Training data for the reader: weighted sources, mined negatives that never hold the answer, cached windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.errors import TrainingDataError
from qa.metrics import normalize_answer
from qa.squad import load_squad
from qa.trainset import (
    Example,
    NegativeShares,
    TrainSource,
    apply_weight,
    build_training_set,
    featurize,
    mine_negatives,
    parse_source,
)

# Two articles of three paragraphs each; questions whose answers recur in some other paragraphs, so that the
# miner has to skip those.
ARTICLES = {
    "Bridges": [
        ("The Alpha bridge was opened in 1932. It crosses the Red River near the old mill.",
         [("When was the Alpha bridge opened?", "1932"), ("What river does the Alpha bridge cross?", "Red River")]),
        ("The mill by the Red River was built of stone. It closed long ago.",
         [("What was the mill built of?", "stone")]),
        ("A second bridge, the Beta bridge, opened in 1950 and is made of steel.",
         [("When did the Beta bridge open?", "1950")]),
    ],
    "Lakes": [
        ("Gamma Lake lies at 1,200 metres. Its water is cold all year and trout live there.",
         [("How high is Gamma Lake?", "1,200 metres"), ("What fish live in Gamma Lake?", "trout")]),
        ("Delta Lake is shallow and warm; carp and trout share it with herons.",
         [("Which birds live at Delta Lake?", "herons")]),
        ("The lakes were surveyed in 1932 by a team from the river authority.",
         [("When were the lakes surveyed?", "1932")]),
    ],
}


def write_squad(path, articles=ARTICLES, unanswerable: bool = False):
    data = []
    for title, pars in articles.items():
        paragraphs = []
        for p_i, (ctx, qas) in enumerate(pars):
            items = [{"id": f"{title}-{p_i}-{i}", "question": q, "is_impossible": False,
                      "answers": [{"text": a, "answer_start": ctx.index(a)}]} for i, (q, a) in enumerate(qas)]
            if unanswerable:
                items.append({"id": f"{title}-{p_i}-x", "question": "Who painted it?", "answers": [],
                              "is_impossible": True})
            paragraphs.append({"context": ctx, "qas": items})
        data.append({"title": title, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
    return path


def answerable(articles):
    return [Example(p.context, q.question, q.answer_starts[0], q.answers[0])
            for a in articles for p in a.paragraphs for q in p.questions if not q.is_impossible]


def test_parse_source_reads_an_optional_weight(tmp_path):
    f = write_squad(tmp_path / "t.json")
    assert parse_source(str(f)) == TrainSource(str(f), 1.0)
    assert parse_source(f"{f}:2") == TrainSource(str(f), 2.0)
    assert parse_source(f"{f}:0.25") == TrainSource(str(f), 0.25)
    with pytest.raises(TrainingDataError, match="must be a weight, got 'lots'"):
        parse_source(f"{f}:lots")
    with pytest.raises(TrainingDataError, match="weight must be a number >= 0"):
        parse_source(f"{f}:-1")
    with pytest.raises(TrainingDataError, match="nowhere.json' not found"):
        parse_source(str(tmp_path / "nowhere.json"))
    with pytest.raises(TrainingDataError, match="nowhere.json' not found"):
        parse_source(f"{tmp_path / 'nowhere.json'}:2")


def test_apply_weight_copies_and_samples_deterministically():
    exs = [Example("c", f"q{i}", 0, "c") for i in range(1000)]
    assert apply_weight(exs, 2.0, 1) == [e for e in exs for _ in range(2)]
    assert apply_weight(exs, 0.0, 1) == []
    half = apply_weight(exs, 0.5, 1)
    assert 400 < len(half) < 600 and half == apply_weight(exs, 0.5, 1)
    assert 1400 < len(apply_weight(exs, 1.5, 1)) < 1600


def test_mined_negatives_never_hold_a_gold_answer(tmp_path):
    articles = load_squad(write_squad(tmp_path / "t.json"))
    pool = answerable(articles)
    negs = mine_negatives(articles, pool, NegativeShares(synthetic=1.0, paragraph=1.0, retrieved=1.0), seed=3)
    assert {n.kind for n in negs} == {"synthetic", "paragraph", "retrieved"}
    gold = {(p.context, q.question): q.answers for a in articles for p in a.paragraphs for q in p.questions}
    answers_of = {q: a for (c, q), a in gold.items()}
    title_of = {p.context: a.title for a in articles for p in a.paragraphs}
    own_title = {q: title_of[c] for (c, q) in gold}
    for n in negs:
        assert n.answer_start is None and n.answer_text == ""
        for ans in answers_of[n.question]:
            assert normalize_answer(ans) not in normalize_answer(n.context), (n.kind, n.question, n.context)
        if n.kind == "paragraph":
            assert title_of[n.context] == own_title[n.question] and n.context not in [
                c for (c, q) in gold if q == n.question]
        if n.kind == "retrieved":
            assert title_of[n.context] != own_title[n.question]
    # "When was the Alpha bridge opened?" (1932): the lakes' survey paragraph also says 1932, so BM25's
    # best other-article paragraph is skipped for it; only paragraphs without 1932 may be its negatives.
    for n in negs:
        if n.question == "When was the Alpha bridge opened?":
            assert "1932" not in n.context


def test_mined_negatives_skip_a_question_whose_answer_is_everywhere(tmp_path):
    everywhere = {
        "A": [("Red is a colour. It is warm.", [("What colour is it?", "Red")]),
              ("Red again here.", [("What again?", "again")])],
        "B": [("Red and blue.", [("Which two?", "Red and blue")])],
    }
    articles = load_squad(write_squad(tmp_path / "t.json", everywhere))
    negs = mine_negatives(articles, answerable(articles), NegativeShares(paragraph=1.0, retrieved=1.0), seed=0)
    assert not [n for n in negs if n.question == "What colour is it?"]


def test_negative_shares_are_seeded_per_kind(tmp_path):
    articles = load_squad(write_squad(tmp_path / "t.json"))
    pool = answerable(articles)
    a = mine_negatives(articles, pool, NegativeShares(paragraph=0.5), seed=5)
    b = mine_negatives(articles, pool, NegativeShares(paragraph=0.5, retrieved=0.5), seed=5)
    assert a == [n for n in b if n.kind == "paragraph"]  # adding a kind leaves the other kind's pairs as they were
    assert a == mine_negatives(articles, pool, NegativeShares(paragraph=0.5), seed=5)
    with pytest.raises(ValueError, match="retrieved negatives share"):
        NegativeShares(retrieved=1.5)


def test_featurize_labels_decode_back_to_the_answer(tiny_reader):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_reader))
    ctx = "The Alpha bridge was opened in 1932. It crosses the Red River near the old mill. " * 3
    exs = [Example(ctx, "What river?", ctx.index("Red River"), "Red River"),
           Example(ctx, "Who?", None, "", "retrieved")]
    feats = featurize(tok, exs, max_length=32, stride=8, negative_weight=0.5)
    assert len(feats) > 2 and feats.ids.dtype == np.int32
    found = 0
    for i in range(len(feats)):
        ids = feats.ids[feats.offsets[i] : feats.offsets[i + 1]]
        if feats.start[i]:
            found += 1
            assert tok.decode(ids[feats.start[i] : feats.end[i] + 1]) == "red river"
        # token types switch to 1 where the passage starts (after the question's [SEP])
        assert tok.convert_ids_to_tokens(int(ids[feats.n_first[i] - 1])) == "[SEP]"
    assert found >= 1
    assert set(feats.weight.tolist()) == {1.0, 0.5}  # the unanswerable example's windows weigh 0.5
    assert {int(s) for s, w in zip(feats.start, feats.weight, strict=True) if w == 0.5} == {0}


def test_featurize_names_a_question_too_long_for_the_windows(tiny_reader):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_reader))
    long_q = "Which river " + "very " * 40 + "long?"
    exs = [Example("The Red River.", "What river?", 4, "Red River"), Example("The Red River.", long_q, 4, "Red River")]
    with pytest.raises(TrainingDataError, match=r"'Which river very.*too long for windows of 32 tokens"):
        featurize(tok, exs, max_length=32, stride=8)


def test_training_set_mixes_weighted_files_and_is_cached(tmp_path, tiny_reader):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_reader))
    a = write_squad(tmp_path / "a.json")
    b = write_squad(tmp_path / "b.json", {"Lakes": ARTICLES["Lakes"]}, unanswerable=True)
    sources = [TrainSource(str(a), 2.0), TrainSource(str(b), 1.0)]
    arts = [load_squad(a), load_squad(b)]
    kw = dict(max_length=48, stride=16, shares=NegativeShares(), negative_weight=1.0, seed=1)
    plain = build_training_set(sources, arts, set(), tok, **kw)
    # a: 8 answerable questions, twice; b: its 4 answerable Lakes questions (the same pairs as a's, but another
    # file), and 3 unanswerable
    assert plain.counts["answer"] == 2 * 8 + 4 and plain.counts["unanswerable"] == 3
    held = build_training_set(sources, arts, {"Lakes"}, tok, **kw)
    assert held.counts["answer"] == 2 * 4 and held.counts["unanswerable"] == 0  # Lakes held out of both files
    first = build_training_set(sources, arts, set(), tok, **kw, cache_dir=tmp_path / "c", identity={"x": 1})
    again = build_training_set(sources, arts, set(), tok, **kw, cache_dir=tmp_path / "c", identity={"x": 1})
    assert not first.cached and again.cached and again.counts == first.counts
    assert np.array_equal(again.features.ids, first.features.ids)
    assert np.array_equal(again.features.start, first.features.start)
    other = build_training_set(sources, arts, set(), tok, **kw, cache_dir=tmp_path / "c", identity={"x": 2})
    assert not other.cached  # other settings, other cache
    with pytest.raises(TrainingDataError, match="no training questions"):
        build_training_set([TrainSource(str(a), 0.0)], [load_squad(a)], set(), tok, **kw)
