"""app.py: a clear error without a model, and a running app despite a broken plugin."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from smapgan.app import launcher as app_launch


def test_without_bundled_model_or_model_flag_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import smapgan.defaults

    monkeypatch.setattr(smapgan.defaults, "DEFAULT_MODEL", tmp_path / "missing")
    assert app_launch.main([]) == 2
    err = capsys.readouterr().err
    assert "bundled default model is missing" in err and "--model" in err and "Traceback" not in err


def test_starts_with_model_flag_and_names_a_broken_plugin(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "exploding.py").write_text("raise ImportError('this plugin needs a missing package')\n")
    monkeypatch.setenv("SMAPGAN_OPS_PATH", str(tmp_path))
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)  # restored (unset) afterwards
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = app_launch.build_parser().parse_args(["--model", str(tiny_model_dir), "--port", str(port)])
    demo = app_launch.launch(args, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as response:
            config = json.loads(response.read())
        text = json.dumps(config)
        assert "exploding.py" in text and "this plugin needs a missing package" in text
        assert "Local transplant" in text  # the other ops are all there
        # Gradio's per-event analytics summary runs every 100 events, not after every edit.
        assert demo._queue.ANAYLTICS_CACHE_FREQUENCY == 100
    finally:
        demo.close()


def test_tune_gradio_keeps_a_users_setting(monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "7")
    app_launch.tune_gradio()
    import os

    assert os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] == "7"


@pytest.mark.parametrize("argv, host", [([], "127.0.0.1"), (["--host"], "0.0.0.0"), (["--host", "10.0.0.2"], "10.0.0.2")])
def test_host_flag(argv, host):
    assert app_launch.build_parser().parse_args(argv).host == host
