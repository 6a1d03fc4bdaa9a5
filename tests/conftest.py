from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Qwen2-style model with a trained BPE tokenizer and a chat template."""
    from _tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Qwen2-style *base* model: no chat template, a BOS token first in every prompt."""
    from _tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2-base"), chat_template=False)


@pytest.fixture(scope="session")
def tiny_base_backend(tiny_base_model_dir: Path):
    from refute.models._hf import HFBackend

    return HFBackend(tiny_base_model_dir, spec=f"hf:{tiny_base_model_dir}", dtype="float32", batch_size=4)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path):
    from refute.models._hf import HFBackend

    return HFBackend(tiny_model_dir, spec=f"hf:{tiny_model_dir}", dtype="float32", batch_size=4)


@pytest.fixture(scope="session")
def default_backend():
    """The real default model, loaded once per session (slow tests only)."""
    from refute.models import load_model

    return load_model("default")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A fault server, with no proxy or OpenAI variables in the environment."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    from _fault_server import serve

    with serve() as srv:
        yield srv


@pytest.fixture()
def store(tmp_path: Path):
    from refute.store import Store

    with Store(tmp_path / "refute.db") as s:
        yield s
