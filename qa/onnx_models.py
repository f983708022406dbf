"""ONNX Runtime versions of the models, for fast answers on a CPU.

Answering a question needs only ``tokenizers``, ``onnxruntime`` and numpy: no torch, no
transformers, no sentence-transformers, so a fresh `qa ask` starts in about a second. The
ONNX files are exported once (this part does need torch) from a local model folder into the
model cache, keyed by a hash of the weights, and written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from qa.config import model_cache_dir

log = logging.getLogger(__name__)
T = TypeVar("T")

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Part of every cache name: a new export recipe gets new files instead of reusing older exports.
#: 2: eager attention traced and ONNX Runtime's transformer fusions applied (see :func:`_fuse`).
EXPORT_VERSION = 2
#: Cache folder names (before the weights' digest) of earlier recipes, deleted once a current export
#: of the same weights is written: this version never reads them again.
SUPERSEDED_KINDS = ("reader", "reader-int8", "reader-int8-pc", "reader-int8-pc-v2", "embedder")


def weights_digest(path: Path) -> str:
    """A short hash of a local model folder's weights and config, to key files derived from it.

    Hashed once per process for the same files (names, sizes, modification times): hashing the
    reader and the embedder takes about 0.1 s, and a question may ask for it more than once.
    """
    path = Path(path)
    names = sorted(n for n in os.listdir(path) if n.endswith((".safetensors", ".bin")) or n == "config.json")
    signature = tuple((n, (st := os.stat(path / n)).st_size, st.st_mtime_ns) for n in names)
    return _digest(str(path.resolve()), signature)


@functools.lru_cache(maxsize=32)
def _digest(path: str, signature: tuple) -> str:
    h = hashlib.sha256()
    for name, _, _ in signature:
        h.update(name.encode())
        with open(Path(path) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def reader_cache_kind(int8: bool) -> str:
    """Name of a reader's export in the model cache: per-channel 7-bit int8 ("rr", reduce_range) or fp32."""
    return f"reader-int8-rr-v{EXPORT_VERSION}" if int8 else f"reader-v{EXPORT_VERSION}"


def embedder_cache_kind() -> str:
    """Name of a query encoder's export in the model cache."""
    return f"embedder-v{EXPORT_VERSION}"


def cached_onnx_path(model_path: str, kind: str) -> Path | None:
    """Where the ONNX export of a local model folder is cached; None for a hub id (no export)."""
    p = Path(model_path)
    if not (p.is_dir() and (p / "config.json").exists() and (p / "tokenizer.json").exists()):
        return None
    return model_cache_dir() / f"{kind}-{weights_digest(p)}" / "model.onnx"


def failed_marker(target: Path) -> Path:
    """Where a failed export to ``target`` is remembered, with its reason, so that every start does not retry it
    (a new EXPORT_VERSION or other weights get a new folder; delete the file to retry)."""
    return target.with_name("export-failed.txt")


def _remember_failure(target: Path, exc: BaseException) -> None:
    """Record that exporting to ``target`` failed (best effort: a read-only cache just retries next time)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        failed_marker(target).write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
    except OSError:
        pass


def open_export(
    target: Path | None, export: Callable[[Path], object], load: Callable[[Path], T], what: str, fallback: str
) -> T | None:
    """``load(target)``, running ``export(target)`` first when the file is not there yet; None when there is no
    target or exporting or loading fails (logged, naming ``what`` and the ``fallback`` used instead).

    A failed export is remembered beside ``target`` (:func:`failed_marker`), so later starts go straight to the
    fallback instead of trying again; a file that fails to load is deleted, to be exported afresh next time.
    """
    if target is None:
        return None
    if failed_marker(target).exists():
        log.info("ONNX export of %s failed before (%s); using %s", what, failed_marker(target), fallback)
        return None
    exporting = not target.exists()
    try:
        if exporting:
            log.info("exporting %s to ONNX once, into %s", what, target)
            export(target)
        return load(target)
    except Exception as exc:  # noqa: BLE001 - the fallback still works; say why ONNX does not
        log.warning("ONNX %s unavailable (%s); using %s", what, exc, fallback)
        if exporting:
            _remember_failure(target, exc)
        target.unlink(missing_ok=True)
        return None


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session with full graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _attention_shape(config) -> tuple[int, int]:
    """(heads, hidden size) of a transformers config; 0 where unknown (the optimizer then reads the graph)."""
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None) or 0
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None) or 0
    return int(heads), int(hidden)


def _run(path: Path, sample: dict) -> list[np.ndarray]:
    sess = session(path)
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v.numpy() for k, v in sample.items() if k in names})


def _fuse(src: Path, dst: Path, sample: dict, heads: int, hidden: int) -> Path:
    """``src`` with ONNX Runtime's transformer fusions (one Attention op per layer, SkipLayerNorm, BiasGelu).

    Checked on ``sample`` (padded, so the mask is exercised) against the unfused graph; where the
    fusions do not apply or the outputs move by more than 1e-3, ``src`` is returned unchanged.
    On 2 cores the fused reader ran 5 windows of 176-256 tokens in 249 ms against 299 ms for the
    graph traced from PyTorch's default (sdpa) attention, with logits equal to 1e-5.
    """
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        logging.disable(logging.WARNING)  # the optimizer's notes on fusions it could not apply
        try:
            model = optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
            fused = model.get_fused_operator_statistics()
            if not fused.get("Attention"):
                log.info("no attention subgraph to fuse in %s; kept as traced", src)
                return src
            model.save_model_to_file(str(dst))
        finally:
            logging.disable(logging.NOTSET)
        want, got = _run(src, sample), _run(dst, sample)
        if all(np.allclose(a, b, atol=1e-3, rtol=1e-3) for a, b in zip(want, got, strict=True)):
            return dst
        log.warning("the fused ONNX graph changed the outputs; kept the unfused one")
    except Exception as exc:  # noqa: BLE001 - the unfused graph is correct, only slower
        log.warning("ONNX transformer fusion failed (%s); kept the unfused graph", exc)
    return src


def _export(
    module, sample: dict, target: Path, outputs: list[str], *, quantize: bool, attention: tuple[int, int] | None,
    source: str,
) -> Path:
    """Trace ``module`` to ONNX (dynamic batch and length), fuse where ``attention`` (heads, hidden)
    is given, optionally int8-quantize, move into place; ``source`` (the model folder) is recorded beside it."""
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    module.eval()  # the wrapper too: a wrapper left in training mode traces a graph that drifts from torch
    names = [k for k in ONNX_INPUTS if k in sample]
    axes = {k: {0: "batch", 1: "seq"} for k in names}
    axes.update({o: {0: "batch"} for o in outputs})
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer advisories about shapes that stay dynamic here
        fp32 = Path(tmp) / "model.onnx"
        with torch.inference_mode():
            torch.onnx.export(
                module,
                tuple(sample[k] for k in names),
                str(fp32),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        final = fp32
        if attention is not None:
            final = _fuse(fp32, Path(tmp) / "model-fused.onnx", sample, *attention)
        if quantize:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            graph, final = final, Path(tmp) / "model-int8.onnx"
            head = [n.name for n in onnx.load(str(graph), load_external_data=False).graph.node
                    if n.op_type == "MatMul" and "qa_outputs" in n.name]
            logging.disable(logging.WARNING)  # onnxruntime's advice on pre-processing goes to the root logger
            try:
                # Per-channel scales: per-tensor int8 cost the shipped reader 3.9 F1. 7-bit weights
                # (reduce_range): AVX2 without VNNI multiplies u8 x s8 pairs into saturating int16 sums;
                # on 400 tune-article questions they kept 94.2 % of fp32's answers against 91.2 % for
                # 8 bits, at the same speed. The 384 x 2 answer head stays fp32 (no time to save there).
                # The default tensor type covers outputs of fused ops, which shape inference cannot type.
                quantize_dynamic(str(graph), str(final), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=True, nodes_to_exclude=head,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            finally:
                logging.disable(logging.NOTSET)
        os.replace(final, target)
    (target.parent / SOURCE_FILE).write_text(_source_key(source) + "\n", encoding="utf-8")
    remove_superseded(target)
    return target


SOURCE_FILE = "source.txt"  # beside each export: the model folder it came from


def _source_key(model_path: str) -> str:
    return str(Path(model_path).resolve())


def remove_superseded(target: Path) -> None:
    """Delete cache folders that ``target`` makes dead weight: earlier export recipes of the same weights, and
    exports of earlier weights of the same model folder (a new shipped reader leaves no 90 MB behind).

    ``target`` is ``<cache>/<kind>-<digest>/model.onnx``; anything else is left alone, and so is any folder
    that does not say which model folder it came from.
    """
    import shutil

    folder = target.parent
    kind, sep, digest = folder.name.rpartition("-")
    if not sep or not kind.endswith(f"-v{EXPORT_VERSION}"):
        return
    stale = [folder.parent / f"{old}-{digest}" for old in SUPERSEDED_KINDS]
    try:
        source = (folder / SOURCE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        source = None
    if source:
        for other in folder.parent.iterdir():
            if other.name.rpartition("-")[2] == digest or not (other / SOURCE_FILE).is_file():
                continue
            try:
                if (other / SOURCE_FILE).read_text(encoding="utf-8").strip() == source:
                    stale.append(other)
            except OSError:
                continue
    for old in stale:
        if old.is_dir() and old != folder:
            shutil.rmtree(old, ignore_errors=True)
            log.info("removed %s (superseded by %s)", old, folder)


def _quiet_transformers() -> None:
    """No "Loading weights" bars or load reports on the user's terminal during a one-time export."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _model_inputs(input_ids, attention_mask, token_type_ids) -> dict:
    """Keyword inputs of a traced forward pass: token_type_ids only where the tokenizer makes them (not RoBERTa's)."""
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    return inputs


def _sample_inputs(model_path: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    _quiet_transformers()

    tok = AutoTokenizer.from_pretrained(model_path)
    enc = tok(["who is it?", "where"], ["a passage here.", "another one"], padding=True, return_tensors="pt")
    return {k: enc[k].to(torch.long) for k in ONNX_INPUTS if k in enc}


def export_reader(model_path: str, target: Path, *, quantize: bool = False) -> Path:
    """Export a question-answering model; ``quantize`` makes its weights int8 (dynamic quantization)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    _quiet_transformers()
    # Eager attention traces to plain MatMul/Softmax that ONNX Runtime fuses into its Attention op;
    # the sdpa trace does not fuse and ran 11 % slower even unfused.
    model = AutoModelForQuestionAnswering.from_pretrained(
        model_path, dtype=torch.float32, attn_implementation="eager"
    ).eval()

    class _QA(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            out = self.m(**_model_inputs(input_ids, attention_mask, token_type_ids))
            return out.start_logits, out.end_logits

    return _export(_QA(model), _sample_inputs(model_path), target, ["start_logits", "end_logits"], quantize=quantize,
                   attention=_attention_shape(model.config), source=model_path)


def export_query_encoder(model_path: str, target: Path) -> Path:
    """Export a mean-pooling sentence embedder (all-MiniLM-L6-v2 style), in fp32 so vectors don't drift."""
    import torch
    from transformers import AutoModel

    _quiet_transformers()
    model = AutoModel.from_pretrained(model_path, dtype=torch.float32, attn_implementation="eager").eval()

    class _Mean(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            hidden = self.m(**_model_inputs(input_ids, attention_mask, token_type_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return _export(_Mean(model), _sample_inputs(model_path), target, ["embedding"], quantize=False,
                   attention=_attention_shape(model.config), source=model_path)


def is_mean_pooling_embedder(model_path: str) -> bool:
    """True for a local sentence-transformers folder of Transformer + mean Pooling (+ Normalize)."""
    p = Path(model_path)
    try:
        modules = json.loads((p / "modules.json").read_text())
        pooling = json.loads((p / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [m.get("type", "") for m in modules]
    plain = all(k.endswith(("Transformer", "Pooling", "Normalize")) for k in kinds)
    return plain and bool(pooling.get("pooling_mode_mean_tokens")) and not pooling.get("pooling_mode_cls_token")


class OnnxQueryEncoder:
    """Encodes questions with an ONNX export of the index's embedder: same vectors, a fraction of the start-up."""

    def __init__(self, model_name: str, model_path: str, onnx_path: Path, threads: int | None = None) -> None:
        """Args: the manifest's model name, the model folder (tokenizer), the exported ONNX file."""
        from tokenizers import Tokenizer

        self.model_name = model_name
        self._session = session(onnx_path, threads)
        self._inputs = frozenset(i.name for i in self._session.get_inputs())  # no token_type_ids for some models
        self._tok = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        max_len = 256
        try:
            cfg = json.loads((Path(model_path) / "sentence_bert_config.json").read_text())
            max_len = int(cfg.get("max_seq_length", max_len))
        except (OSError, ValueError):
            pass
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_len)
        self._dim = int(self._session.get_outputs()[0].shape[-1])

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def encode_query(self, text: str) -> np.ndarray:
        """float32[dim], normalised."""
        enc = self._tok.encode(text)
        feed = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
        }
        (vec,) = self._session.run(["embedding"], {k: v for k, v in feed.items() if k in self._inputs})
        return np.asarray(vec[0], dtype=np.float32)


def prepare_query_encoder(model_name: str, model_path: str, threads: int | None = None) -> OnnxQueryEncoder | None:
    """The ONNX query encoder for a local mean-pooling embedder, exporting it once; None when unsupported."""
    if not is_mean_pooling_embedder(model_path):
        return None
    return open_export(
        cached_onnx_path(model_path, embedder_cache_kind()),
        lambda target: export_query_encoder(model_path, target),
        lambda target: OnnxQueryEncoder(model_name, model_path, target, threads),
        f"the query encoder {model_path}",
        "sentence-transformers",
    )
