"""eval/average_readers.py: the weighted mean of readers' weights, refused for readers that do not match."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import load_eval_script, make_tiny_reader

from qa.errors import QAError


def _module():
    return load_eval_script("average_readers")


@pytest.fixture(scope="module")
def two_readers(tmp_path_factory):
    from safetensors.numpy import load_file, save_file

    a = make_tiny_reader(tmp_path_factory.mktemp("a"))
    b = tmp_path_factory.mktemp("b")
    shutil.copytree(a, b, dirs_exist_ok=True)
    tensors = load_file(b / "model.safetensors")
    save_file({k: v + np.asarray(1.0, dtype=v.dtype) for k, v in tensors.items()}, b / "model.safetensors",
              metadata={"format": "pt"})
    return a, b


def test_the_soup_is_the_weighted_mean_and_loads_as_a_reader(two_readers, tmp_path):
    from safetensors.numpy import load_file

    mod = _module()
    a, b = two_readers
    assert mod.main([str(a), f"{b}:3", "-o", str(tmp_path / "soup")]) == 0
    wa, wb, soup = (load_file(p / "model.safetensors") for p in (a, b, tmp_path / "soup"))
    for k in wa:
        assert soup[k].dtype == wa[k].dtype
        np.testing.assert_allclose(soup[k], 0.25 * wa[k] + 0.75 * wb[k], rtol=1e-6, atol=1e-6)
    record = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert [r["weight"] for r in record["readers"]] == [1.0, 3.0]
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    AutoModelForQuestionAnswering.from_pretrained(tmp_path / "soup")
    AutoTokenizer.from_pretrained(tmp_path / "soup")
    with pytest.raises(QAError, match="already holds a reader"):
        mod.average_readers([(a, 1.0), (b, 1.0)], tmp_path / "soup")


def test_readers_that_do_not_match_are_refused_by_name(two_readers, tmp_path):
    mod = _module()
    a, b = two_readers
    with pytest.raises(QAError, match="at least two"):
        mod.average_readers([(a, 1.0)], tmp_path / "o")
    other = tmp_path / "other"
    shutil.copytree(b, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(QAError, match=f"reader {other}: its config.json differs"):
        mod.average_readers([(a, 1.0), (other, 1.0)], tmp_path / "o")
    (other / "config.json").write_text(json.dumps(cfg))
    (other / "tokenizer.json").write_text("{}")
    with pytest.raises(QAError, match="its tokenizer.json differs"):
        mod.average_readers([(a, 1.0), (other, 1.0)], tmp_path / "o")
    with pytest.raises(QAError, match="weight must be positive"):
        mod.parse_reader(f"{a}:0")
    assert mod.parse_reader(str(a)) == (a, 1.0)
    assert mod.main([str(a), str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 1
    assert not (tmp_path / "o").exists()
