"""The settings offer the devices this server's machine has, and nothing else."""

from __future__ import annotations

import re

import pytest
import torch

from tests.web.conftest import User


def offered(page: str) -> list[str]:
    select = page.split('<select id="device"', 1)[1].split("</select>", 1)[0]
    return re.findall(r'<option value="([^"]+)"', select)


def test_a_cpu_only_server_offers_auto_and_the_cpu(alice: User) -> None:
    assert offered(alice.client.get("/settings").text) == ["auto", "cpu"]
    refused = alice.client.patch("/api/settings", json={"device": "cuda"},
                                 headers={"X-CSRF-Token": alice.csrf})
    assert refused.status_code == 422
    assert "'cuda' is not available on this server: choose auto, cpu" in refused.text
    form = alice.client.post("/settings/demucs", data={
        "csrf_token": alice.csrf, "demucs_model": "htdemucs", "device": "mps",
        "output_format": "wav"})
    assert form.status_code == 422 and "not available on this server" in form.text


def test_a_two_gpu_server_offers_each_gpu_by_name(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"NVIDIA H200 #{index}")
    page = alice.client.get("/settings").text
    assert offered(page) == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert "NVIDIA H200 #1 (cuda:1)" in page
    saved = alice.client.patch("/api/settings", json={"device": "cuda:1"},
                               headers={"X-CSRF-Token": alice.csrf})
    assert saved.status_code == 200 and saved.json()["device"] == "cuda:1"
