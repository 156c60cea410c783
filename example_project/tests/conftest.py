from __future__ import annotations

import pytest


@pytest.fixture
def openai_sdk(llm_model):
    """The official openai SDK pointed at the test's model (OpenAI-format models only)."""
    openai = pytest.importorskip("openai")
    if llm_model.api != "openai":
        pytest.skip(f"{llm_model.name} does not speak the OpenAI API")
    client = openai.OpenAI(
        base_url=llm_model.base_url, api_key=llm_model.api_key() or "not-needed", max_retries=0
    )
    yield client
    client.close()
