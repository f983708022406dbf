"""Build the models the settings name: embedder, query encoder and reader (the shipped ones by default).

Every other module gets its models from here (tests patch these functions to inject fakes).
"""

from __future__ import annotations

from qa.config import Settings, check_model_reachable


def make_embedder(settings: Settings):
    """The embedder the settings name (the packaged all-MiniLM-L6-v2 by default)."""
    from qa.embedding import SentenceTransformerEmbedder

    check_model_reachable(settings.embedder_path, "embedder", allow_download=settings.allow_download)
    return SentenceTransformerEmbedder(settings.embedder_name, settings.embedder_path, device=settings.device)


def make_query_encoder(settings: Settings):
    """What embeds questions: an ONNX export of the embedder (no torch at query time) where it
    can be made, else the sentence-transformers model itself."""
    check_model_reachable(settings.embedder_path, "embedder", allow_download=settings.allow_download)
    if settings.reader_runtime != "torch" and settings.device == "cpu":
        from qa.onnx_models import prepare_query_encoder

        encoder = prepare_query_encoder(settings.embedder_name, settings.embedder_path, settings.threads)
        if encoder is not None:
            return encoder
    return make_embedder(settings)


def prepare_models(settings: Settings | None = None) -> None:
    """Build the ONNX query encoder and reader once (normally done lazily by the first question)."""
    settings = settings or Settings.from_env()
    make_query_encoder(settings)
    make_reader(settings).warm_up()


def models_ready(settings: Settings) -> bool:
    """True when the ONNX files the settings' models need are built (or cannot be: none, or a failed export)."""
    from qa.onnx_models import (
        cached_onnx_path,
        embedder_cache_kind,
        failed_marker,
        is_mean_pooling_embedder,
        reader_cache_kind,
    )

    kind = reader_cache_kind(settings.reader_runtime == "onnx-int8")
    needed = [cached_onnx_path(settings.reader_path, kind)] if settings.reader_runtime != "torch" else []
    if is_mean_pooling_embedder(settings.embedder_path):
        needed.append(cached_onnx_path(settings.embedder_path, embedder_cache_kind()))
    return all(p is None or p.exists() or failed_marker(p).exists() for p in needed)


def make_calibrator(settings: Settings, reader):
    """The calibration of ``reader``'s score the settings name (qa.calibration.find_calibration), or None.

    A reader with no ``path`` (a test's fake) gets none unless the settings name a file.
    """
    from qa.calibration import find_calibration

    path = getattr(reader, "path", None)
    if path is None and settings.calibration == "auto":
        return None
    return find_calibration(settings.calibration, path if path is not None else "")


def make_reader(settings: Settings):
    """The reader the settings name (the shipped one by default)."""
    from qa.reader import TransformersReader

    check_model_reachable(settings.reader_path, "reader", allow_download=settings.allow_download)
    return TransformersReader(
        settings.reader_path,
        max_length=settings.reader_max_length,
        stride=settings.reader_stride,
        max_answer_tokens=settings.max_answer_tokens,
        runtime=settings.reader_runtime,
        device=settings.device,
        threads=settings.threads,
        rank_penalty=settings.rank_penalty,
        span_breaks=settings.span_breaks,
    )
