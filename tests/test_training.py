"""The reader training recipe on a handful of SQuAD examples with a tiny model (fast, offline)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.errors import ModelLoadError
from qa.reader import TransformersReader
from qa.schema import Chunk, Hit
from qa.training import TrainConfig, answer_window_loss, distillation_loss, span_loss, synthetic_negative, train_reader

CONTEXTS = {
    "Alpha": "The Alpha bridge was opened in 1932. It crosses the Red River near the old mill.",
    "Beta": "Beta Lake lies at 1,200 metres. Its water is cold all year and trout live there.",
}


def squad_file(path, version: str = "v2.0"):
    data = []
    for title, ctx in CONTEXTS.items():
        qas = []
        for i, (q, a) in enumerate([("When was it opened?", "1932"), ("What river does it cross?", "Red River"),
                                     ("How high is it?", "1,200 metres"), ("What lives there?", "trout")]):
            if a in ctx:
                qas.append({"id": f"{title}-{i}", "question": q,
                            "answers": [{"text": a, "answer_start": ctx.index(a)}], "is_impossible": False})
        qas.append({"id": f"{title}-x", "question": "Who painted it?", "answers": [], "is_impossible": True})
        data.append({"title": title, "paragraphs": [{"context": ctx, "qas": qas}]})
    path.write_text(json.dumps({"version": version, "data": data}), encoding="utf-8")
    return path


def config(tmp_path, tiny_reader, **kw) -> TrainConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    base = dict(train_files=(str(squad_file(tmp_path / "train.json")),), output_dir=str(tmp_path / "out"),
                base_model=str(tiny_reader), dev_articles=("Beta",), max_length=48, doc_stride=16, batch_size=2,
                max_steps=3, learning_rate=1e-3, save_fp16=False, save_every=0)
    base.update(kw)
    return TrainConfig(**base)


def interrupted_after_first_checkpoint(monkeypatch, cfg) -> list[int]:
    """Run ``cfg`` until its first checkpoint is saved, then interrupt it as Ctrl-C would (the checkpoint is
    complete, the run is not); returns the steps checkpointed. The real save is restored afterwards."""
    import qa.training as training

    calls: list[int] = []
    real_save = training._save_checkpoint

    def save_then_crash(*args):
        real_save(*args)
        calls.append(args[4])
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_reader(cfg)
    monkeypatch.setattr(training, "_save_checkpoint", real_save)
    return calls


def test_trains_saves_and_the_folder_answers(tmp_path, tiny_reader):
    steps = []
    result = train_reader(config(tmp_path, tiny_reader), progress=lambda s, n, loss: steps.append((s, n, loss)))
    assert result.steps == 3 and [s for s, _, _ in steps] == [1, 2, 3]
    assert result.train_questions == 3  # Alpha: two answerable + one unanswerable; Beta is held out
    assert result.dev is not None and result.dev.n_answerable == 2 and result.dev.n_unanswerable == 1
    saved = json.loads((tmp_path / "out" / "training.json").read_text())
    assert saved["config"]["dev_articles"] == ["Beta"] and saved["result"]["steps"] == 3
    reader = TransformersReader(str(tmp_path / "out"), runtime="torch")
    text = CONTEXTS["Alpha"]
    hit = Hit(Chunk("a#0", "a", 0, len(text), text), 1.0, 0)
    answers = reader.read("When was the bridge opened?", [hit], min_score=0.0)
    assert answers and all(text[a.span.start : a.span.end] == a.text for a in answers)


def test_synthetic_negative_deletes_the_answer_sentence():
    text = "The bridge was built of stone. It opened in 1932 after a long strike. Trout live below it."
    rest = synthetic_negative(text, text.index("1932"), "1932")
    assert rest == "The bridge was built of stone. Trout live below it."
    # An answer spanning two sentences takes both with it.
    start = text.index("strike")
    assert synthetic_negative(text, start, text[start : text.index("Trout") + 5]) == "The bridge was built of stone."


def test_synthetic_negative_refuses_what_stays_answerable():
    text = "It opened in 1932. The strike of 1932 delayed it."
    assert synthetic_negative(text, text.index("1932"), "1932") is None  # the answer is still in the rest
    assert synthetic_negative("Opened in 1932.", 10, "1932") is None  # nothing would be left


def test_synthetic_negatives_add_unanswerable_training_questions(tmp_path, tiny_reader):
    plain = train_reader(config(tmp_path / "a", tiny_reader, max_steps=1))
    more = train_reader(config(tmp_path / "b", tiny_reader, max_steps=1, synthetic_negatives=1.0))
    assert more.train_questions == plain.train_questions + 2  # both answerable Alpha questions
    with pytest.raises(ValueError, match="synthetic_negatives"):
        train_reader(config(tmp_path / "c", tiny_reader, synthetic_negatives=1.5))


def test_same_seed_same_weights(tmp_path, tiny_reader):
    from safetensors.numpy import load_file

    a = train_reader(config(tmp_path / "a", tiny_reader, max_steps=2))
    b = train_reader(config(tmp_path / "b", tiny_reader, max_steps=2))
    wa = load_file(f"{a.output_dir}/model.safetensors")
    wb = load_file(f"{b.output_dir}/model.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_resume_continues_from_checkpoint(tmp_path, tiny_reader, monkeypatch):
    cfg = config(tmp_path, tiny_reader, max_steps=4, save_every=2, dev_articles=())
    calls = interrupted_after_first_checkpoint(monkeypatch, cfg)
    assert calls == [2] and (tmp_path / "out" / "checkpoint" / "trainer_state.pt").exists()
    seen = []
    resumed = config(tmp_path, tiny_reader, max_steps=4, save_every=2, dev_articles=(), resume=True)
    result = train_reader(resumed, progress=lambda s, n, loss: seen.append(s))
    assert seen == [3, 4] and result.steps == 4
    assert not (tmp_path / "out" / "checkpoint").exists()  # cleaned up once the run finished

    # the same run as one that was never interrupted: same batches, schedule and dropout masks
    from safetensors.numpy import load_file

    straight = train_reader(config(tmp_path, tiny_reader, max_steps=4, dev_articles=(),
                                   output_dir=str(tmp_path / "straight")))
    resumed_w, straight_w = load_file(f"{result.output_dir}/model.safetensors"), load_file(
        f"{straight.output_dir}/model.safetensors")
    assert all((resumed_w[k] == straight_w[k]).all() for k in straight_w)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, tiny_reader, monkeypatch):
    from qa.errors import TrainingDataError

    interrupted_after_first_checkpoint(monkeypatch, config(tmp_path, tiny_reader, max_steps=4, save_every=2,
                                                           dev_articles=()))
    with pytest.raises(TrainingDataError, match=r"batch_size 2 -> 4"):
        train_reader(config(tmp_path, tiny_reader, max_steps=4, save_every=2, dev_articles=(), batch_size=4,
                            resume=True))


def test_an_unknown_dev_article_is_an_error(tmp_path, tiny_reader):
    from qa.errors import TrainingDataError

    with pytest.raises(TrainingDataError, match="'beta'"):
        train_reader(config(tmp_path, tiny_reader, dev_articles=("beta",)))  # the title is "Beta"


def test_distillation_loss_is_zero_for_the_teacher_itself_and_ignores_padding():
    import torch

    torch.manual_seed(0)
    start, end = torch.randn(3, 7), torch.randn(3, 7)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[:, 5:] = 0
    assert distillation_loss(start, end, start, end, mask, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = start.clone()
    other[:, 5:] += 100.0  # differs only where the mask says padding
    assert distillation_loss(other, end, start, end, mask, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(end, start, start, end, mask, 2.0).item() > 0.01


def test_answer_window_loss_distils_answer_windows_only():
    import torch

    torch.manual_seed(1)
    start, end = torch.randn(3, 7), torch.randn(3, 7)
    mask = torch.ones(3, 7, dtype=torch.long)
    starts, ends = torch.tensor([2, 0, 3]), torch.tensor([4, 0, 3])  # window 1 is labelled "no answer"
    weights = torch.tensor([1.0, 2.0, 1.0])
    soft = distillation_loss(start, end, end, start, mask, 2.0, per_window=True)
    assert soft.shape == (3,) and bool((soft > 0).all())
    assert soft.mean().item() == pytest.approx(distillation_loss(start, end, end, start, mask, 2.0).item())
    # weight 0: the gold spans alone, as span_loss
    assert answer_window_loss(start, end, starts, ends, weights, soft, 0.0).item() == pytest.approx(
        span_loss(start, end, starts, ends, weights).item())
    # weight 1: the answer windows take the soft term, the "no answer" window keeps its cross-entropy
    ce = span_loss(start[1:2], end[1:2], starts[1:2], ends[1:2], weights[1:2]).item()
    expected = (soft[0].item() + 2.0 * ce + soft[2].item()) / 4.0
    assert answer_window_loss(start, end, starts, ends, weights, soft, 1.0).item() == pytest.approx(expected)


def test_distils_answer_windows_only_from_the_base_model(tmp_path, tiny_reader):
    plain = train_reader(config(tmp_path / "a", tiny_reader, max_steps=2, teachers=(str(tiny_reader),)))
    lwf = train_reader(config(tmp_path / "b", tiny_reader, max_steps=2, teachers=(str(tiny_reader),),
                              distill_answers_only=True))
    assert lwf.history != plain.history
    saved = json.loads((tmp_path / "b" / "out" / "training.json").read_text())
    assert saved["config"]["distill_answers_only"] is True
    with pytest.raises(ValueError, match="teacher"):
        config(tmp_path / "c", tiny_reader, distill_answers_only=True)
    train = squad_file(tmp_path / "train.json")
    result = CliRunner().invoke(app, ["train-reader", str(train), "--output", str(tmp_path / "out"),
                                      "--base-model", str(tiny_reader), "--distill-answers-only"])
    assert result.exit_code == 2 and "--teacher" in result.output


def test_distils_from_teachers(tmp_path, tiny_reader):
    teacher = train_reader(config(tmp_path / "t", tiny_reader, max_steps=2))
    plain = train_reader(config(tmp_path / "a", tiny_reader, max_steps=2))
    soft = train_reader(config(tmp_path / "b", tiny_reader, max_steps=2, teachers=(teacher.output_dir,) * 2,
                               distill_weight=1.0))
    assert soft.history != plain.history  # the loss now comes from the teachers' logits
    saved = json.loads((tmp_path / "b" / "out" / "training.json").read_text())
    assert saved["config"]["teachers"] == [teacher.output_dir] * 2
    reader = TransformersReader(soft.output_dir, runtime="torch")
    text = CONTEXTS["Alpha"]
    answers = reader.read("When was it opened?", [Hit(Chunk("a#0", "a", 0, len(text), text), 1.0, 0)], min_score=0.0)
    assert answers and all(text[a.span.start : a.span.end] == a.text for a in answers)
    with pytest.raises(ValueError, match="distill_weight"):
        config(tmp_path / "c", tiny_reader, distill_weight=2.0)


def test_refuses_a_teacher_with_another_vocabulary(tmp_path, tiny_reader):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_reader, other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["zzzunseen"] = vocab.pop("[unused0]")
    (other / "tokenizer.json").write_text(json.dumps(tok))
    (other / "vocab.txt").unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="teacher .*other.*tokenizer differs"):
        train_reader(config(tmp_path / "s", tiny_reader, teachers=(str(other),)))


def test_cli_names_a_missing_teacher_and_training_without_questions(tmp_path, tiny_reader):
    train = squad_file(tmp_path / "train.json")
    base = ["train-reader", str(train), "--output", str(tmp_path / "out"), "--base-model", str(tiny_reader),
            "--max-steps", "1"]
    result = CliRunner().invoke(app, [*base, "--teacher", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "teacher" in result.output and "nowhere" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, [*base, "--dev-article", "Alpha", "--dev-article", "Beta"])
    assert result.exit_code == 1 and "no training questions" in result.output and "train.json" in result.output


def test_cli_defaults_are_the_recipe_defaults(tmp_path, monkeypatch):
    """`qa train-reader` passes TrainConfig's own defaults unless an option is given (one recipe, not two)."""
    import dataclasses

    import qa.training as training

    seen = {}

    def fake(cfg, progress=None, featurize_progress=None):
        seen["cfg"] = cfg
        return training.TrainResult(output_dir=cfg.output_dir, steps=0, seconds=0.0, train_questions=0,
                                    train_features=0)

    monkeypatch.setattr(training, "train_reader", fake)
    train = squad_file(tmp_path / "train.json")
    result = CliRunner().invoke(app, ["train-reader", str(train), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    given = {"train_files", "output_dir"}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in given:
            assert getattr(seen["cfg"], f.name) == f.default, f.name


def test_train_reader_help_documents_the_recipe():
    result = CliRunner().invoke(app, ["train-reader", "--help"])
    assert result.exit_code == 0
    for word in ("--dev-article", "--max-length", "--doc-stride", "--learning-rate", "--device", "--resume",
                 "--teacher", "--distill-weight", "FILE[:WEIGHT]", "--paragraph-negatives", "--retrieved-negatives",
                 "--synthetic-negatives", "--negative-weight", "--threads", "--log", "--precision"):
        assert word in result.output


def test_resume_of_a_mixed_run_with_negatives_gives_the_uninterrupted_weights(tmp_path, tiny_reader, monkeypatch):
    """Two weighted files and every kind of mined negative: the resumed run reads its windows from the run's
    cache and ends with exactly the weights of a run never interrupted (which built its windows afresh)."""
    from safetensors.numpy import load_file

    other = squad_file(tmp_path / "other.json")
    mixed = dict(train_files=(str(squad_file(tmp_path / "train.json")), str(other)), train_weights=(2.0, 0.5),
                 dev_articles=(), max_steps=4, save_every=2, synthetic_negatives=1.0, paragraph_negatives=1.0,
                 retrieved_negatives=1.0, negative_weight=0.5, attention_dropout=0.0)
    assert interrupted_after_first_checkpoint(monkeypatch, config(tmp_path, tiny_reader, **mixed)) == [2]
    resumed = train_reader(config(tmp_path, tiny_reader, **mixed, resume=True))
    straight = train_reader(config(tmp_path, tiny_reader, **mixed, output_dir=str(tmp_path / "straight")))
    assert resumed.featurize_seconds == 0.0 and straight.featurize_seconds > 0  # the cache, then afresh
    assert resumed.example_counts == straight.example_counts and resumed.example_counts["retrieved"] > 0
    a, b = load_file(f"{resumed.output_dir}/model.safetensors"), load_file(f"{straight.output_dir}/model.safetensors")
    assert all((a[k] == b[k]).all() for k in b)
    saved = json.loads((tmp_path / "out" / "training.json").read_text())
    assert saved["config"]["train_weights"] == [2.0, 0.5] and saved["result"]["example_counts"]["paragraph"] >= 0


def test_cli_mixes_files_with_weights(tmp_path, tiny_reader):
    a, b = squad_file(tmp_path / "a.json"), squad_file(tmp_path / "b.json")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["train-reader", f"{a}:2", str(b), "--output", str(out), "--base-model",
                                      str(tiny_reader), "--max-steps", "1", "--dev-article", "Beta",
                                      "--paragraph-negatives", "1", "--save-every", "0"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "training.json").read_text())
    assert saved["config"]["train_files"] == [str(a), str(b)] and saved["config"]["train_weights"] == [2.0, 1.0]
    # Alpha's 3 questions twice from a.json and once from b.json (Beta held out of both)
    assert saved["result"]["example_counts"]["answer"] + saved["result"]["example_counts"]["unanswerable"] == 9
    bad = CliRunner().invoke(app, ["train-reader", f"{a}:many", "--output", str(out)])
    assert bad.exit_code == 1 and "must be a weight" in bad.output and "Traceback" not in bad.output


def test_bf16_trains_other_weights_repeatably_and_resumes_exactly(tmp_path, tiny_reader, monkeypatch):
    """bfloat16 autocast changes the arithmetic (other weights than float32), not the determinism: the same
    seed gives the same weights, a resumed run the uninterrupted one's; a bf16 checkpoint is not resumed as
    fp32."""
    from safetensors.numpy import load_file

    from qa.errors import TrainingDataError

    run = dict(max_steps=4, save_every=2, dev_articles=(), precision="bf16")
    assert interrupted_after_first_checkpoint(monkeypatch, config(tmp_path, tiny_reader, **run)) == [2]
    with pytest.raises(TrainingDataError, match="precision"):
        train_reader(config(tmp_path, tiny_reader, **{**run, "precision": "fp32"}, resume=True))
    resumed = train_reader(config(tmp_path, tiny_reader, **run, resume=True))
    straight = train_reader(config(tmp_path, tiny_reader, **run, output_dir=str(tmp_path / "straight")))
    fp32 = train_reader(config(tmp_path, tiny_reader, **{**run, "precision": "fp32"},
                               output_dir=str(tmp_path / "fp32")))
    a, b, c = (load_file(f"{r.output_dir}/model.safetensors") for r in (resumed, straight, fp32))
    assert all((a[k] == b[k]).all() for k in b)
    assert any((b[k] != c[k]).any() for k in c)
    assert json.loads((tmp_path / "out" / "training.json").read_text())["config"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision"):
        config(tmp_path, tiny_reader, precision="fp16")
