"""Azure OpenAI models and a model's own headers, through all three ways a test reaches a
model: the ``llm`` client, the SDK fixtures, and the code under test's own ``AzureOpenAI``
client (bound by ``llm_sdks``). Real pytest sessions, the real openai SDK, over loopback to
the simulator (which answers Azure's paths and its ``api-key`` header, and refuses a wrong
key or a deployment path without an api-version) or to a stand-in that records what came."""

from __future__ import annotations

import pytest

from tests.gateway_server import Gateway

pytest.importorskip("openai")

KEY = "azure-key-0123456789abcdef"

THREE_PATHS = """
import openai
import pytest

# the code under test's own client, built once at import with its own key and version
THEIRS = openai.AzureOpenAI(
    azure_endpoint="https://theirs.openai.azure.com",
    api_key="their-own-key-0000000000",
    api_version="2024-06-01",
)


def test_llm(llm):
    assert llm.complete("hi") == "ok"


def test_llm_stream(llm):
    assert "".join(llm.stream("hi")) == "ok"


def test_sdk_fixture(openai_client, llm_model):
    answer = openai_client.chat.completions.create(
        model=llm_model.model, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "ok"
    assert type(openai_client).__name__ == EXPECTED_CLIENT


def test_bound(llm_sdks):
    answer = THEIRS.chat.completions.create(
        model="their-deployment", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "ok"
"""

RESPONSES = """

def test_sdk_fixture_responses(openai_client, llm_model):
    assert openai_client.responses.create(model=llm_model.model, input="hi").output_text == "ok"


def test_bound_responses(llm_sdks):
    assert THEIRS.responses.create(model="their-deployment", input="hi").output_text == "ok"
"""


def azure_model(url: str, extra: str) -> str:
    return f"""
[tool.llm-matrix.models.az]
provider = "azure-openai"
base_url = "{url}"
model = "prod-4o-mini"
api_key_env = "AZURE_TEST_KEY"
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "expected_client"),
    [('api_version = "2024-10-21"', "AzureOpenAI"), ("", "OpenAI")],
    ids=["deployment-paths", "v1-api"],
)
@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])
def test_an_azure_model_is_reached_by_every_path(
    pytester, write_config, simulator, monkeypatch, extra, expected_client, workers
):
    sim = simulator({"default_reply": "ok", "models": {"prod-4o-mini": {"api_key": KEY}}})
    monkeypatch.setenv("AZURE_TEST_KEY", KEY)
    write_config(azure_model(sim.url, extra))
    pytester.makepyfile(THREE_PATHS.replace("EXPECTED_CLIENT", repr(expected_client)) + RESPONSES)
    result = pytester.runpytest_subprocess("--models=az", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=6)
    # every request reached the deployment, with the model's key (a wrong one is a 401, a
    # path without an api-version a 404, as is Responses under a deployment's path: Azure
    # serves it at the resource's /openai/responses)
    assert sim.stats()["statuses"] == {"200": 6}


def test_a_deployment_azure_does_not_know_makes_the_model_unavailable(
    pytester, write_config, simulator, monkeypatch
):
    sim = simulator({"default_reply": "ok", "models": {"other": {}}})
    monkeypatch.setenv("AZURE_TEST_KEY", KEY)
    write_config(azure_model(sim.url, 'api_version = "2024-10-21"'))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_x(llm, n):
            llm.complete("hi")
        """
    )
    result = pytester.runpytest_subprocess("--models=az", "-p", "no:randomly")
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["*az is unavailable: HTTP 404 DeploymentNotFound: The API deployment*"]
    )
    assert sim.stats()["statuses"] == {"404": 1}


@pytest.mark.sdk
def test_what_goes_to_azure_exactly(pytester, write_config, monkeypatch):
    """The deployment's path and api-version, the key in api-key, the configured headers;
    none of the bound client's own key, version or endpoint."""
    monkeypatch.setenv("AZURE_TEST_KEY", KEY)
    monkeypatch.setenv("TEAM_TEST_TOKEN", "team-token-abcdef0123")
    with Gateway("litellm") as gateway:
        root = gateway.url.removesuffix("/v1")
        write_config(
            azure_model(
                root,
                'api_version = "2024-10-21"\n'
                'headers = { "X-Title" = "nightly evals", "X-Team" = { env = "TEAM_TEST_TOKEN" } }',
            )
        )
        pytester.makepyfile(
            THREE_PATHS.replace("EXPECTED_CLIENT", "'AzureOpenAI'").replace(
                '"ok"', '"four words of reply"'
            )
        )
        result = pytester.runpytest_subprocess("--models=az", "-p", "no:randomly")
        seen = gateway.seen
    result.assert_outcomes(passed=4)
    assert len(seen) == 4
    for number, (path, headers) in enumerate(seen):
        assert path == "/openai/deployments/prod-4o-mini/chat/completions?api-version=2024-10-21"
        assert headers["api-key"] == KEY
        if number == 2:  # the SDK fixture's AzureOpenAI: older openai releases add a bearer key
            assert headers.get("authorization", f"Bearer {KEY}") == f"Bearer {KEY}"
        else:
            assert "authorization" not in headers
        assert "their-own" not in str(headers)
        assert headers["x-title"] == "nightly evals"
        assert headers["x-team"] == "team-token-abcdef0123"


def through_the_v1_api(pytester, write_config, extra: str) -> list[tuple[str, dict[str, str]]]:
    """The three client paths to an Azure model on the v1 API: what each request carried."""
    with Gateway("litellm") as gateway:
        write_config(azure_model(gateway.url.removesuffix("/v1"), extra))
        pytester.makepyfile(
            THREE_PATHS.replace("EXPECTED_CLIENT", "'OpenAI'").replace(
                '"ok"', '"four words of reply"'
            )
        )
        result = pytester.runpytest_subprocess("--models=az", "-p", "no:randomly")
        seen = gateway.seen
    result.assert_outcomes(passed=4)
    assert {path for path, _ in seen} == {"/openai/v1/chat/completions"}
    return [headers for _, headers in seen]


def test_the_key_goes_in_api_key_on_the_v1_api_too(pytester, write_config, monkeypatch):
    """The SDK fixture's client (an OpenAI client on the v1 API) sends the key in api-key as
    well as ``llm`` and bound clients do: a gateway in front of Azure may take only that."""
    monkeypatch.setenv("AZURE_TEST_KEY", KEY)
    seen = through_the_v1_api(pytester, write_config, "")
    assert [headers["api-key"] for headers in seen] == [KEY] * 4


def test_an_entra_token_goes_as_a_bearer_token(pytester, write_config, monkeypatch):
    monkeypatch.setenv("AZURE_TEST_KEY", "entra-token-0123456789")
    for headers in through_the_v1_api(pytester, write_config, 'auth = "entra"'):
        assert headers["authorization"] == "Bearer entra-token-0123456789"
        assert "api-key" not in headers


def test_headers_go_to_any_model_and_their_secrets_are_redacted(
    pytester, write_config, monkeypatch
):
    """OpenRouter's attribution headers and a gateway's team key on an OpenAI-compatible
    model; a secret header's value never shows, and an unset one skips the model's tests
    as a missing key does."""
    monkeypatch.setenv("TEAM_TEST_TOKEN", "team-token-abcdef0123")
    with Gateway("openrouter") as gateway:
        write_config(
            f"""
[tool.llm-matrix.models.gw]
provider = "openai-compatible"
base_url = "{gateway.url}"
headers = {{ "HTTP-Referer" = "https://example.com", "X-Team" = {{ env = "TEAM_TEST_TOKEN" }} }}
"""
        )
        pytester.makepyfile(
            """
            def test_x(llm):
                llm.complete("hi")
                raise AssertionError("the team token is team-token-abcdef0123")
            """
        )
        result = pytester.runpytest_subprocess("--models=gw", "-p", "no:randomly")
        seen = gateway.seen
    result.assert_outcomes(failed=1)
    assert seen[0][1]["http-referer"] == "https://example.com"
    assert seen[0][1]["x-team"] == "team-token-abcdef0123"
    assert "team-token-abcdef0123" not in result.stdout.str()
    assert "the team token is ***" in result.stdout.str()
    monkeypatch.delenv("TEAM_TEST_TOKEN")
    skipped = pytester.runpytest_subprocess("--models=gw", "-p", "no:randomly", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*TEAM_TEST_TOKEN is not set*"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('provider = "azure-openai"', "provider 'azure-openai' needs a 'base_url'"),
        (
            'provider = "azure-openai"\nbase_url = "https://x.openai.azure.com/openai/v1"',
            "the resource's endpoint without the API's path",
        ),
        (
            'provider = "openai-compatible"\nbase_url = "http://h/v1"\napi_version = "2024-10-21"',
            "field 'api_version' only applies to provider 'azure-openai'",
        ),
        (
            'provider = "azure-openai"\nbase_url = "https://x"\napi_version = "2024 10"',
            "field 'api_version': expected an Azure api-version",
        ),
        (
            'provider = "azure-openai"\nbase_url = "https://x"\nauth = "token"',
            "field 'auth': expected one of api-key, entra",
        ),
        (
            'provider = "simulator"\nheaders = { "Authorization" = "Bearer x" }',
            "field 'headers': 'Authorization' is set by the plugin",
        ),
        (
            'provider = "simulator"\nheaders = { "X-A" = { variable = "B" } }',
            "field 'headers': 'X-A': expected a string or { env = \"VARIABLE\" }",
        ),
        (
            'provider = "azure-openai"\nbase_url = "https://x"\nmodel = "a/b"',
            "field 'model': an Azure deployment's name",
        ),
        (
            'provider = "azure-openai"\nbase_url = "https://x"\nmodel = ".."',
            "field 'model': an Azure deployment's name",
        ),
        (
            'provider = "azure-openai"\nbase_url = "https://x"\nauth = "entra"',
            "auth 'entra' needs 'api_key_env'",
        ),
        (
            'provider = "simulator"\nheaders = { "X-Team" = "a", "x-team" = "b" }',
            "field 'headers': 'x-team' is given twice",
        ),
        (
            'provider = "simulator"\nheaders = { "User-Agent" = "mine/1.0" }',
            "field 'headers': 'User-Agent' is set by the plugin or its HTTP library",
        ),
        (
            'provider = "simulator"\nheaders = { "X A" = "b" }',
            "field 'headers': 'X A' is not an HTTP header name",
        ),
        (
            'provider = "simulator"\nheaders = { "X-A" = "line\\nbreak" }',
            "field 'headers': 'X-A': expected printable ASCII text",
        ),
    ],
)
def test_bad_azure_and_header_settings_are_refused(pytester, write_config, fields, message):
    write_config(f"[tool.llm-matrix.models.m]\n{fields}\n")
    pytester.makepyfile("def test_x(llm): pass")
    result = pytester.runpytest_subprocess("--models=m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()
