"""The API's own description (/openapi.json and the /docs page): request
bodies, the token scheme, allowed values and the errors routes really return
(issue 15, defect 3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.fake_lalalai import FakeLalalai
from tests.web.conftest import User
from tests.web.helpers import upload

OPTIONAL_BODIES = {
    ("post", "/api/tracks/{track_id}/separations"): ("SeparationIn", ["engine", "stems",
                                                                      "two_stems", "force"]),
    ("post", "/api/lalalai/test-key"): ("TestKeyIn", ["key"]),
    ("post", "/api/lalalai/cancel"): ("CancelIn", ["job_id"]),
}


@pytest.fixture
def spec(anon: TestClient) -> dict[str, Any]:
    return anon.get("/openapi.json").json()


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"][path][method]


def test_optional_bodies_are_documented_with_their_fields(
    spec: dict[str, Any], alice: User
) -> None:
    page = alice.client.get("/docs").text
    for (method, path), (model, fields) in OPTIONAL_BODIES.items():
        schema = _operation(spec, method, path)["requestBody"]["content"][
            "application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, path
        anchor = f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")
        article = page.split(f'id="{anchor}"', 1)[1].split("</article>", 1)[0]
        assert f"Body · application/json · {model}" in article, path
        for field in fields:
            assert f'<td class="mono">{field}</td>' in article, (path, field)


def test_bodies_stay_optional(alice: User, wav: Path) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    started = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers())
    assert started.status_code == 202 and started.json()["engine"] == "local"
    assert alice.client.post("/api/lalalai/cancel", headers=alice.headers()).status_code == 404


def test_the_bearer_token_scheme_covers_every_api_and_file_route(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerToken"]["type"] == "http"
    assert schemes["bearerToken"]["scheme"] == "bearer"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if path.startswith(("/api/", "/export/", "/files/")):
                assert op.get("security") == [{"bearerToken": []}], (method, path)


def test_engine_model_format_and_stem_names_are_enums(spec: dict[str, Any]) -> None:
    props = spec["components"]["schemas"]["SeparationIn"]["properties"]

    def values(prop: dict[str, Any]) -> list[str]:
        (choice,) = [s for s in prop["anyOf"] if s.get("type") != "null"]
        return choice.get("enum") or choice["items"]["enum"]

    assert values(props["engine"]) == ["local", "lalalai"]
    # The model is an open set (any ensemble: "a+b"), documented by examples:
    # every model and preset, and the ensemble syntax.
    (model,) = [s for s in props["model"]["anyOf"] if s.get("type") != "null"]
    assert "enum" not in model
    assert {"htdemucs_6s", "ensemble_six_stems", "max-spec/htdemucs_ft+mdx_extra"} <= set(
        model["examples"])
    assert values(props["format"]) == ["wav", "flac", "mp3"]
    assert {"vocals", "guitar", "electric_guitar", "backing_vocals"} <= set(values(props["stems"]))
    assert "phoenix" in values(props["splitter"])
    assert values(props["extraction_level"]) == ["deep_extraction", "clear_cut"]
    settings = spec["components"]["schemas"]["SettingsIn"]["properties"]
    assert values(settings["output_format"]) == ["wav", "flac", "mp3"]
    # The default model is a model or a preset: a closed set.
    assert {"htdemucs_6s", "ensemble_six_stems"} <= set(values(settings["demucs_model"]))


def test_a_wrong_value_still_gets_the_engines_message(alice: User, wav: Path) -> None:
    """The enums document; the engines still validate, with words that help."""
    track = upload(alice.client, alice.csrf, wav)["id"]
    wrong = alice.client.post(f"/api/tracks/{track}/separations",
                              json={"model": "htdemucs_xl"}, headers=alice.headers())
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "invalid_option"
    assert "htdemucs" in wrong.json()["error"]["message"]


def _documented(spec: dict[str, Any], method: str, path: str, status: int) -> None:
    responses = _operation(spec, method, path)["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answers {status} undocumented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorOut"}


def test_the_errors_routes_return_are_documented(
    spec: dict[str, Any], alice: User, anon: TestClient, fake_lalalai: FakeLalalai, wav: Path
) -> None:
    headers = alice.headers()
    track = upload(alice.client, alice.csrf, wav)["id"]
    sep = "/api/tracks/{track_id}/separations"
    seen: list[tuple[str, str, int]] = []

    def expect(method: str, path: str, status: int, response: Any) -> None:
        assert response.status_code == status, (path, response.text)
        assert "error" in response.json()
        seen.append((method, path, status))

    expect("get", "/api/tracks", 401, anon.get("/api/tracks"))
    expect("post", sep, 403, alice.client.post(f"/api/tracks/{track}/separations",
                                               headers={"Accept": "application/json"}))
    expect("post", sep, 404, alice.client.post("/api/tracks/nope/separations", headers=headers))
    expect("post", sep, 422, alice.client.post(f"/api/tracks/{track}/separations",
                                               json={"engine": "lalalai"}, headers=headers))
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=headers)
    fake_lalalai.set_minutes(0.01)
    expect("post", sep, 402, alice.client.post(f"/api/tracks/{track}/separations",
                                               json={"engine": "lalalai"}, headers=headers))
    fake_lalalai.fail_next("minutes_left", 5)  # every try of one call
    expect("post", sep, 502, alice.client.post(f"/api/tracks/{track}/separations",
                                               json={"engine": "lalalai"}, headers=headers))
    fake_lalalai.fail_next("minutes_left", 5)  # every try of one call
    expect("get", "/api/lalalai/quota", 502, alice.client.get("/api/lalalai/quota"))
    fake_lalalai.fail_next("minutes_left", 5)  # every try of one call
    expect("post", "/api/lalalai/test-key", 502,
           alice.client.post("/api/lalalai/test-key", headers=headers))
    expect("post", "/api/lalalai/test-key", 422,
           alice.client.post("/api/lalalai/test-key", json={"key": "wrong"}, headers=headers))
    for method, path, status in seen:
        _documented(spec, method, path, status)


def test_file_route_errors_are_json_for_api_clients(alice: User) -> None:
    token_page = alice.client.post("/settings/tokens", data={"csrf_token": alice.csrf,
                                                             "name": "script"}).text
    token = re.search(r'<code class="new-token">([^<]+)</code>', token_page).group(1)
    scripted = {"Authorization": f"Bearer {token}", "Accept": "*/*"}
    for url in ("/export/stem/999999", "/export/stems/no-such-track",
                "/files/stems/no-such-job/vocals.wav"):
        for headers in (scripted, {"Accept": "*/*"}):
            response = alice.client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert response.headers["content-type"].startswith("application/json"), url
            assert response.json()["error"]["code"] == "not_found"
    # A browser that navigates there still gets the error page.
    page = alice.client.get("/export/stem/999999",
                            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_no_route_documents_errors_it_cannot_answer(spec: dict[str, Any]) -> None:
    me = _operation(spec, "get", "/api/me")["responses"]
    assert sorted(me) == ["200", "401"]
    models = _operation(spec, "get", "/api/models")["responses"]
    assert "404" not in models and "422" not in models
    # Every 422 carries our error body, never FastAPI's validation shape.
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if "422" in op["responses"]:
                _documented(spec, method, path, 422)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_a_malformed_body_answers_the_documented_shape(alice: User, wav: Path) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    response = alice.client.post(f"/api/tracks/{track}/separations", json={"shoe_size": 44},
                                 headers=alice.headers())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
