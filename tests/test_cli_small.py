"""Small CLI behaviours users asked for: --version, full command summaries, offline models, --max-file-mb."""

from __future__ import annotations

import pytest
from test_cli_index import fake_models, widen_output  # noqa: F401 - fake_models: a fixture, by name
from typer.testing import CliRunner

from qa.cli import app
from qa.config import Settings, check_model_reachable
from qa.errors import ModelLoadError

runner = CliRunner()


def test_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"qa {version('qa')}"


def test_help_lists_every_command_with_a_whole_summary():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    for command in ("index", "ask", "chat", "status", "remove", "eval", "bench", "train-reader"):
        assert f"  {command} " in result.output
    commands = result.output.split("Commands:", 1)[1]
    assert "..." not in commands  # no summary cut short


def test_a_model_id_not_in_the_local_cache_fails_at_once(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match=r"reader 'nosuch-org/nosuch-model' is neither a local folder nor in the "
                       r"local Hugging Face cache.*--allow-download"):
        check_model_reachable("nosuch-org/nosuch-model", "reader", allow_download=False)
    check_model_reachable("nosuch-org/nosuch-model", "reader", allow_download=True)  # allowed: left to the hub
    check_model_reachable(str(tmp_path), "reader", allow_download=False)  # a local folder always passes
    with pytest.raises(ModelLoadError, match="no such folder"):
        check_model_reachable(str(tmp_path / "missing"), "embedder", allow_download=False)
    with pytest.raises(ModelLoadError, match="neither a local folder nor a Hugging Face model id"):
        check_model_reachable("not a//valid id", "embedder", allow_download=False)
    # a model the cache holds loads offline
    snap = tmp_path / "hub" / "models--some-org--cached" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--some-org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--some-org--cached" / "refs" / "main").write_text("abc")
    check_model_reachable("some-org/cached", "reader", allow_download=False)


def test_hf_hub_offline_0_allows_downloads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert Settings.from_env().allow_download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not Settings.from_env().allow_download
    assert Settings.from_env(allow_download=True).allow_download


def test_cli_names_an_uncached_embedder_without_trying_the_network(tmp_path, tiny_corpus, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    result = runner.invoke(app, ["index", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"),
                                 "--embedder", "nosuch-org/nosuch-embedder"])
    assert result.exit_code == 1, result.output
    assert "embedder 'nosuch-org/nosuch-embedder' is neither a local folder" in result.output
    assert "--allow-download" in result.output and "Traceback" not in result.output


def test_max_file_mb_from_the_cli(tmp_path, fake_models, monkeypatch):  # noqa: F811 - fixture
    widen_output(monkeypatch)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("The bridge opened in 1932.", encoding="utf-8")
    (docs / "big.txt").write_text("The river is long. " * 200, encoding="utf-8")  # about 3.8 kB
    result = runner.invoke(app, ["index", str(docs), "--index-dir", str(tmp_path / "idx"), "--max-file-mb", "0.002"])
    assert result.exit_code == 0, result.output
    assert "big.txt" in result.output and "--max-file-mb" in result.output
    status = runner.invoke(app, ["status", "--index-dir", str(tmp_path / "idx"), "--docs"])
    assert "small" in status.output and "big" not in status.output.replace("big.txt", "")


def test_train_reader_names_an_unknown_perturbed_kind_and_lists_the_kinds(tmp_path):
    squad = tmp_path / "t.json"
    squad.write_text('{"data": []}')
    result = runner.invoke(app, ["train-reader", str(squad), "-o", str(tmp_path / "out"),
                                 "--perturbed-negatives", "0.4", "--perturbed-kinds", "number,rhyme"])
    assert result.exit_code == 2
    assert "rhyme" in result.output and "opposite" in result.output and "--perturbed-kinds" in result.output
    assert not (tmp_path / "out").exists()
    help_text = runner.invoke(app, ["train-reader", "--help"], env={"COLUMNS": "200"}).output
    assert "--perturbed-kinds" in help_text and "month" in help_text
