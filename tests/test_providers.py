"""Which ONNX Runtime build serves, and the CUDA fallback: the dev/test environment has the CPU
build (pyproject's `serve` extra), so a server starting there logs no CUDA errors; the GPU build
(`serve-gpu`, the GPU container) on a machine whose CUDA libraries do not load falls back to
the CPU, which is run here for real by reporting CUDA available as that build does."""

from __future__ import annotations

import logging
from importlib import metadata

import numpy as np
import onnxruntime as ort
import pytest

from devtools.server import FunctionServer
from stylefn.styles.registry import CPU, CUDA, GpuRequiredError, StyleRegistry, check_setup

HAS_CUDA_BUILD = CUDA in ort.get_available_providers()
# What the CPU build says when asked for CUDA, as the fallback tests do on purpose.
ASKED_FOR_CUDA = "ignore:Specified provider 'CUDAExecutionProvider':UserWarning"


def test_exactly_one_onnxruntime_build_is_installed():
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    builds = names & {"onnxruntime", "onnxruntime-gpu"}
    assert len(builds) == 1, (
        f"{sorted(builds)} installed: they share the import name `onnxruntime`; install the "
        "`serve` extra (CPU) or `serve-gpu`, never both"
    )


@pytest.mark.skipif(HAS_CUDA_BUILD, reason="the GPU build is installed; it may log CUDA lines")
def test_server_start_on_the_cpu_build_logs_no_cuda(model_dir, tmp_path):
    log = tmp_path / "server.log"
    with FunctionServer(model_dir, log_path=log):
        pass  # up: /healthz answered, so the models are loaded and "ready" is logged
    text = log.read_text()
    assert '"message": "ready"' in text and CPU in text  # the log is the server's
    assert "cuda" not in text.lower(), text


@pytest.fixture
def cuda_reported(monkeypatch):
    """onnxruntime as the GPU build reports itself on a machine without a usable GPU: CUDA
    listed, its libraries absent (sessions asked for CUDA get the CPU)."""
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, *real])
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: None, raising=False)


@pytest.mark.filterwarnings(ASKED_FOR_CUDA)
@pytest.mark.skipif(HAS_CUDA_BUILD, reason="a real CUDA build may load on this machine")
def test_cuda_fallback_serves_on_the_cpu(model_dir, cuda_reported, caplog):
    with caplog.at_level(logging.WARNING, logger="inference"):
        registry = StyleRegistry(model_dir)
    assert registry.provider == CPU
    assert registry.default_arch == "fast"  # resolved again once the provider was settled
    warnings = [r.getMessage() for r in caplog.records if "CUDA" in r.getMessage()]
    assert warnings == ["CUDA provider unavailable; running on CPU"]  # once, not per model
    choice = registry.get("dots")  # a second session: CPU straight away
    rgb = np.zeros((24, 32, 3), np.uint8)
    assert registry.stylize(choice, rgb).shape == rgb.shape
    session = choice.model.session
    assert session is not None and session.get_providers()[0] == CPU


@pytest.mark.filterwarnings(ASKED_FOR_CUDA)
@pytest.mark.skipif(HAS_CUDA_BUILD, reason="a real CUDA build may load on this machine")
def test_cuda_fallback_is_refused_when_a_gpu_is_required(model_dir, cuda_reported):
    with pytest.raises(GpuRequiredError, match="failed to load"):
        StyleRegistry(model_dir, require_gpu=True)


@pytest.mark.skipif(HAS_CUDA_BUILD, reason="the GPU build is installed")
def test_gpu_required_without_a_cuda_build_fails_the_start(model_dir):
    with pytest.raises(GpuRequiredError, match="no CUDA provider"):
        check_setup(model_dir, require_gpu=True)
