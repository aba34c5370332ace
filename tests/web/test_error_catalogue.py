"""The error catalogue in docs/web.md is complete: every code the code base can
produce, and every code the framework's own errors are answered with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soundforge.web.errors import HTTP_CODES
from tests.web.conftest import User
from tests.web.helpers import completed_job, upload

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "soundforge"

# Where a code is written in the source: a class's `code = "…"`, a WebError's
# second argument, a job row's error_code, the error renderer's own.
PATTERNS = [
    re.compile(r'^\s+code = "([a-z_]+)"', re.MULTILINE),
    re.compile(r'WebError\(\s*\d+,\s*"([a-z_]+)"'),
    re.compile(r'"error_code":\s*"([a-z_]+)"'),
    re.compile(r'_render\(\s*request,\s*\d+,\s*"([a-z_]+)"'),
]

# In the job code, a code alone on the last line of a call: state.fail(…, "internal_error").
JOB_FAILURE = re.compile(r'^\s+"([a-z_]+)",?\s*\n\s*\)', re.MULTILINE)


def documented_codes() -> set[str]:
    text = (ROOT / "docs" / "web.md").read_text(encoding="utf-8")
    section = text[text.index("### Errors"):text.index("## Tests")]
    return set(re.findall(r"`([a-z_]+)`", section))


def produced_codes() -> set[str]:
    found: set[str] = set(HTTP_CODES.values()) | {"http_error"}
    for path in SOURCE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found.update(pattern.findall(text))
        if path.parent.name == "jobs":
            found.update(JOB_FAILURE.findall(text))
    return found


def test_the_scan_finds_the_codes_it_should() -> None:
    # The scan itself must work, or the completeness check below proves nothing.
    codes = produced_codes()
    for code in ("not_found", "invalid_option", "worker_lost", "internal_error",
                 "stem_damaged", "queue_unavailable", "provider_task_failed", "secret_error"):
        assert code in codes, code


def test_every_code_the_code_base_produces_is_documented() -> None:
    missing = produced_codes() - documented_codes()
    assert not missing, f"codes missing from docs/web.md's error table: {sorted(missing)}"


def test_no_generated_http_codes() -> None:
    assert not any(re.fullmatch(r"http_\d+", code) for code in produced_codes())


@pytest.fixture
def stem_url(alice: User, pipeline, wav: Path) -> str:
    track = upload(alice.client, alice.csrf, wav)["id"]
    job = completed_job(pipeline, track)
    return f"/files/stems/{job}/vocals.wav"


def test_framework_errors_answer_documented_codes(alice: User, stem_url: str) -> None:
    documented = documented_codes()
    client = alice.client
    cases = {
        405: client.request("PUT", "/api/me", headers=alice.headers()),
        # A form whose body cannot be parsed (read for its CSRF field).
        400: client.post("/settings/demucs", content=b"--x\r\nbroken",
                         headers={"Accept": "application/json",
                                  "Content-Type": "multipart/form-data"}),
        416: client.get(stem_url, headers={**alice.headers(), "Range": "bytes=999999999-"}),
        422: client.get("/api/jobs?limit=many", headers=alice.headers()),
    }
    for status, response in cases.items():
        assert response.status_code == status, (status, response.status_code, response.text)
        if status == 416 and not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            continue  # Starlette's file response answers 416 itself, without a body code
        code = response.json()["error"]["code"]
        assert code in documented, (status, code)
        assert not re.fullmatch(r"http_\d+", code)
