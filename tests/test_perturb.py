"""Unanswerable questions made by rule from answerable ones (qa.perturb) and mined as training negatives."""

from __future__ import annotations

import random

import pytest
from test_trainset import answerable, write_squad

from qa.errors import TrainingDataError
from qa.metrics import normalize_answer
from qa.perturb import DEFAULT_KINDS, PERTURBATIONS, NamePool, names_of, perturb_question
from qa.squad import load_squad
from qa.trainset import NegativeShares, mine_negatives

CONTEXT = ("The Alpha bridge over the Red River was opened in 1932 by Mayor Jane Doe. It was the first steel "
           "bridge of the city and the largest one until 1950.")
NAMES = names_of(["When did Lord Kelvin visit Glasgow?", "Who founded Acme Corporation?", "Where is Zorba Hall?"])


def test_names_come_from_questions_without_their_first_word_and_possessive():
    assert NAMES.by_words == {1: ("Glasgow",), 2: ("Lord Kelvin", "Acme Corporation", "Zorba Hall")}
    assert NamePool({}).pick(2, random.Random(0)) is None


def each_kind(question: str, context: str = CONTEXT, answers=("x",), kinds=DEFAULT_KINDS) -> dict[str, str]:
    """What each rule makes of ``question`` (over many seeds: the first rule tried is random)."""
    out = {}
    for seed in range(200):
        p = perturb_question(question, context, list(answers), NAMES, random.Random(seed), kinds)
        if p is not None:
            out.setdefault(p.kind, p.question)
    return out


def test_each_rule_changes_only_what_the_paragraph_cannot_answer():
    made = each_kind("Who opened the first bridge over the Red River in 1932?", answers=("Mayor Jane Doe",))
    assert set(made) == {"number", "entity", "antonym"}  # no negation: no auxiliary before a participle
    number = made["number"]
    new_year = next(w for w in number.rstrip("?").split() if w.isdigit())
    assert new_year != "1932" and new_year not in CONTEXT and number.replace(new_year, "1932") == (
        "Who opened the first bridge over the Red River in 1932?")
    assert made["antonym"] == "Who opened the last bridge over the Red River in 1932?"
    entity = made["entity"]
    assert "Red River" not in entity and any(n in entity for n in ("Lord Kelvin", "Acme Corporation", "Zorba Hall"))


def test_negation_only_between_an_auxiliary_and_a_participle_and_never_over_a_negated_paragraph():
    assert "negation" not in each_kind("When was the Alpha bridge opened?")  # "was the": no participle
    made = each_kind("Which bridge was opened in 1932?")
    assert made["negation"] == "Which bridge was not opened in 1932?"
    negated = CONTEXT + " It was not painted."
    assert "negation" not in each_kind("Which bridge was opened in 1932?", negated)


def test_no_rule_applies_when_nothing_of_the_question_is_in_the_paragraph():
    assert each_kind("Why is the sky blue?") == {}
    assert each_kind("Why is the sky blue?", kinds=PERTURBATIONS) == {}
    assert set(PERTURBATIONS) == {"number", "entity", "antonym", "negation", "month", "opposite", "negation_local",
                                  "ordinal", "entity_local", "ordinal_word"}


MONTH_CONTEXT = ("In March 1974 the council supported the treaty, and its husband-and-wife founders opened the "
                 "first public library of the town in May.")


def test_month_and_opposite_rules_only_when_asked_and_only_with_words_the_paragraph_lacks():
    q = "Which treaty did the council support in March?"
    assert set(each_kind(q, MONTH_CONTEXT)) <= set(DEFAULT_KINDS)  # the default rules never make the new kinds
    made = each_kind(q, MONTH_CONTEXT, kinds=("month", "opposite"))
    assert made["opposite"] == "Which treaty did the council oppose in March?"
    month = made["month"].removeprefix("Which treaty did the council support in ").rstrip("?")
    assert month not in ("March", "May") and month.lower() not in MONTH_CONTEXT.lower()
    # the paragraph already says the new word: no change of that kind
    assert "opposite" not in each_kind(q, MONTH_CONTEXT + " Others opposed it.", kinds=("opposite",))
    # a month the paragraph does not state, or the question's first word ("May" the modal), is left alone
    assert each_kind("Did the council meet in June?", MONTH_CONTEXT, kinds=("month",)) == {}
    assert each_kind("May the council meet in public?", MONTH_CONTEXT, kinds=("month",)) == {}
    # role and kinship words are opposites too; the case of the word is kept
    made = each_kind("Husband of whom founded the library?", MONTH_CONTEXT.replace("husband-and-wife ", ""),
                     kinds=("opposite",))
    assert made["opposite"] == "Wife of whom founded the library?"


def test_local_negation_over_a_paragraph_that_negates_only_other_verbs():
    q = "Which bridge was opened in 1932?"
    elsewhere = CONTEXT + " It was not painted until 1960."
    assert "negation" not in each_kind(q, elsewhere)  # v5's rule: no negation anywhere in the paragraph
    made = each_kind(q, elsewhere, kinds=("negation_local",))
    assert made == {"negation_local": "Which bridge was not opened in 1932?"}
    # a negation just before a form of the verb: the negated question may be answered there
    for near in (" The old bridge was never opened.", " The old bridge wasn't reopened.", " It had not been opening."):
        assert each_kind(q, CONTEXT + near, kinds=("negation_local",)) == {}, near
    assert each_kind(q, CONTEXT + " Nothing was ever said about it, and they opened it.",
                     kinds=("negation_local",))  # "Nothing" is five words before "opened": far enough


def test_an_ordinal_becomes_a_near_one_the_paragraph_never_states():
    context = "The 20th century saw the bridge rebuilt, and the 22nd mayor opened it."
    for seed in range(30):
        p = perturb_question("What happened in the 20th century?", context, ["rebuilt"], NAMES, random.Random(seed),
                             ("ordinal",))
        new = p.question.removeprefix("What happened in the ").removesuffix(" century?")
        assert p.kind == "ordinal" and new in ("17th", "18th", "19th", "21st", "23rd")
    assert each_kind("What happened in the 19th century?", context, kinds=("ordinal",)) == {}  # not stated


LOCAL_CONTEXT = ("Warsaw produces 12% of Poland's national income. Its central district, Srodmiescie, holds "
                 "most offices. The Vistula river flows through the city. Krakow produces 8% of Poland's national "
                 "income. Like Warszawa, Gdansk is old.")


def local_swaps(question: str, context: str = LOCAL_CONTEXT, answers=("12%",)) -> set[tuple[str, str]]:
    """Every (old name, new name) that ``entity_local`` makes of ``question`` over many seeds."""
    out = set()
    for seed in range(100):
        p = perturb_question(question, context, list(answers), NAMES, random.Random(seed), ("entity_local",))
        if p is not None:
            assert p.kind == "entity_local" and p.question == question.replace(p.old, p.new, 1)
            out.add((p.old, p.new))
    return out


def test_a_local_entity_swap_brings_in_a_name_of_the_paragraph_whose_sentences_do_not_answer():
    made = local_swaps("How much of Poland's national income does Warsaw produce?")
    olds, news = {o for o, _ in made}, {n for _, n in made}
    assert olds == {"Warsaw"}  # "Poland's" is not "Poland" as the paragraph's words go
    # Srodmiescie and Vistula: named in sentences that share little with the question. Not Krakow (its sentence
    # answers the changed question), not Warszawa (Warsaw spelt otherwise), not "Like" (a sentence's opening
    # word), not a name of the answer's sentence.
    assert news == {"Srodmiescie", "Vistula", "Gdansk"}
    # nor another spelling of a question's name, accents aside
    accented = LOCAL_CONTEXT.replace("Srodmiescie", "Thüringen")
    swapped_in = {n for _, n in local_swaps("Why do Thuringians say Warsaw makes 12%?", accented)}
    assert {"Vistula", "Gdansk"} <= swapped_in and "Thüringen" not in swapped_in
    # no sentence holds a gold answer: the rule cannot tell which sentences answer, and makes nothing
    assert local_swaps("How much of Poland's national income does Warsaw produce?", answers=("9%",)) == set()
    # the default kinds never make it
    assert "entity_local" not in each_kind("How much of Poland's national income does Warsaw produce?",
                                           LOCAL_CONTEXT, answers=("12%",))


def test_an_ordinal_word_becomes_a_near_one_the_paragraph_never_states():
    context = "Kublai's second invasion of Japan in 1281 failed, as the first had, because of a typhoon."
    made = set()
    for seed in range(60):
        p = perturb_question("What interfered with Kublai's second invasion of Japan?", context, ["a typhoon"],
                             NAMES, random.Random(seed), ("ordinal_word",))
        made.add(p.question.split()[4])
    assert made == {"third", "fourth"}  # "first" is stated: never swapped in
    assert each_kind("Why did the fifth invasion fail?", context, kinds=("ordinal_word",)) == {}  # not stated


def test_unknown_perturbation_kinds_are_named():
    with pytest.raises(ValueError, match="unknown perturbation kind.s. rhyme; the kinds are number, entity"):
        perturb_question("Who?", CONTEXT, ["x"], NAMES, random.Random(0), ("number", "rhyme"))
    with pytest.raises(ValueError, match="unknown perturbation kind.s. rhyme;"):
        NegativeShares(perturbed=0.5, perturbed_kinds=("rhyme",))


def test_a_swap_never_brings_in_a_gold_answer():
    names = names_of(["Who visited Zorba Hall?"])
    for seed in range(50):
        p = perturb_question("Who opened the bridge over the Red River?", CONTEXT, ["Zorba Hall"], names,
                             random.Random(seed))
        assert p is None or "Zorba" not in p.question


def test_perturbed_negatives_keep_their_paragraph_and_lose_the_question_it_answers(tmp_path):
    articles = load_squad(write_squad(tmp_path / "t.json"))
    pool = answerable(articles)
    negs = mine_negatives(articles, pool, NegativeShares(perturbed=1.0), seed=3)
    assert negs and {n.kind for n in negs} == {"perturbed"}
    asked = {(e.context, e.question) for e in pool}
    contexts = {e.context for e in pool}
    for n in negs:
        assert n.answer_start is None and n.context in contexts and (n.context, n.question) not in asked
    assert negs == mine_negatives(articles, pool, NegativeShares(perturbed=1.0), seed=3)
    # another kind's share leaves them as they were
    both = mine_negatives(articles, pool, NegativeShares(paragraph=0.5, perturbed=1.0), seed=3)
    assert negs == [n for n in both if n.kind == "perturbed"]
    assert all(normalize_answer(n.question) for n in negs)


def test_runs_checkpointed_before_perturbed_negatives_existed_still_resume(tmp_path):
    from qa.training import TrainConfig, _check_resumable, _features_identity, _run_identity

    old = TrainConfig(train_files=("t.json",), output_dir=str(tmp_path), paragraph_negatives=0.15)
    saved = {k: v for k, v in _run_identity(old).items()}
    assert "perturbed_negatives" not in saved and "perturbed_negatives" not in _features_identity(old, "base")
    _check_resumable(saved, _run_identity(old), tmp_path)  # no error
    new = TrainConfig(train_files=("t.json",), output_dir=str(tmp_path), paragraph_negatives=0.15,
                      perturbed_negatives=0.2)
    assert _features_identity(new, "base")["perturbed_negatives"] == 0.2
    with pytest.raises(TrainingDataError, match="perturbed_negatives None -> 0.2"):
        _check_resumable(saved, _run_identity(new), tmp_path)


def test_the_default_kinds_leave_a_runs_identity_and_the_new_ones_enter_it(tmp_path):
    from qa.training import TrainConfig, _features_identity, _run_identity

    base = dict(train_files=("t.json",), output_dir=str(tmp_path), perturbed_negatives=0.4)
    default = TrainConfig(**base)
    assert "perturbed_kinds" not in _run_identity(default) and "perturbed_kinds" not in _features_identity(default, "b")
    wider = TrainConfig(**base, perturbed_kinds=(*DEFAULT_KINDS, "month", "opposite"))
    assert _features_identity(wider, "b")["perturbed_kinds"][-2:] == ["month", "opposite"]
    with pytest.raises(ValueError, match="kind.s. .none given."):
        TrainConfig(**base, perturbed_kinds=())
