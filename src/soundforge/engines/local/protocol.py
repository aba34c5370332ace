"""The NDJSON protocol between ``DemucsPort`` and the runner process.

Requests (one JSON object per line on the runner's stdin)::

    {"type": "separate", "id": "…", "input": "/abs/in.mp3", "output_dir": "/abs/staging",
     "model": "htdemucs", "repo": "/abs/repo" | null, "stems": [...] | null,
     "two_stems": "vocals" | null, "format": "wav", "wav_depth": "16",
     "mp3_bitrate": 320, "sample_rate": null, "device": "auto", "shifts": 1,
     "overlap": 0.25, "segment": null, "seed": null, "threads": 0}
    {"type": "cancel", "id": "…"}
    {"type": "shutdown"}

Messages (one JSON object per line on its stdout), the seed's three, each with
the request ``id``; ``stage`` and ``code`` are extra fields::

    {"type": "progress", "percent": 45, "stage": "separating"}
    {"type": "result", "stems": {"vocals": "/abs/staging/vocals.wav", …}}
    {"type": "error", "message": "CUDA out of memory", "code": "out_of_memory"}

A result also says how the runner ran it: ``model_reused``, ``load_seconds``,
``model_loads`` (for warm-runner accounting) and ``large_buffers_on_heap``
(whether the job's large tensors came from the heap, ``allocator.py``).

Between them comes what the user should know about the run (an out-of-memory
retry with smaller batches or segments)::

    {"type": "notice", "message": "Out of cuda:0 memory with 8 segments per call: …"}
"""

from __future__ import annotations

import json
from typing import Any

PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
NOTICE = "notice"
SEPARATE = "separate"
CANCEL = "cancel"
SHUTDOWN = "shutdown"

# ``stage`` values of progress messages.
STAGE_LOADING = "loading"
STAGE_SEPARATING = "separating"
STAGE_WRITING = "writing"


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def progress(request_id: str, percent: int, stage: str) -> dict[str, Any]:
    return {"type": PROGRESS, "id": request_id, "percent": percent, "stage": stage}


def result(request_id: str, stems: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"type": RESULT, "id": request_id, "stems": stems, **extra}


def error(request_id: str | None, message: str, code: str) -> dict[str, Any]:
    return {"type": ERROR, "id": request_id, "message": message, "code": code}


def notice(request_id: str, message: str) -> dict[str, Any]:
    return {"type": NOTICE, "id": request_id, "message": message}
