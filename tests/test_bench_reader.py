"""eval/bench_reader.py's roofline: its count of the forward pass's arithmetic agrees with torch's own count."""

from __future__ import annotations

import pytest
from conftest import load_eval_script


def _bench_reader():
    return load_eval_script("bench_reader")


@pytest.mark.parametrize("length", [16, 64])
def test_forward_gflop_matches_torch_flop_counter(tiny_reader, length):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(tiny_reader)
    # eager attention, so that torch counts the attention products too
    model = AutoModelForQuestionAnswering.from_pretrained(
        tiny_reader, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = torch.ones((1, length), dtype=torch.long)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    counted = counter.get_total_flops() / 1e9
    ours = _bench_reader().forward_gflop(config, [length, length]) / 2  # two windows: twice one window
    # torch also counts the answer head (2 outputs per token), which the roofline leaves out
    assert ours == pytest.approx(counted, rel=0.05)
    assert ours <= counted
