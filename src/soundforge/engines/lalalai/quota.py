"""What a separation costs in LALAL.AI minutes, the check made before any
upload, and the seed's quota report.

LALAL.AI charges "file_length × number_of_selected_stems". Its upload answer
gives the length in whole seconds, and ``minutes_left`` is fractional, so we
count whole seconds (rounded up, never under-estimating) times stems, in
minutes: a 3:00.4 track with 2 stems costs 181 × 2 / 60 = 6.03 minutes. A
60-second preview therefore costs 1 minute per stem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pydantic import SecretStr

from soundforge.config import Settings, get_settings
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.keys import key_id, require_key
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger, UsageLedger
from soundforge.engines.lalalai.retrying import RetryPolicy
from soundforge.errors import QuotaError


def billable_seconds(duration: float) -> int:
    """Whole seconds, rounded up (a tolerance keeps 60.0000001 at 60)."""
    return max(1, math.ceil(duration - 1e-6))


def minutes_for(duration: float, stems: int) -> float:
    return billable_seconds(duration) * stems / 60


def format_minutes(minutes: float) -> str:
    return f"{minutes:.2f}".rstrip("0").rstrip(".") if minutes % 1 else f"{minutes:.0f}"


def ensure_minutes(needed: float, left: float, *, duration: float, stems: int) -> None:
    """Refuse, before anything is uploaded, a job the key cannot pay for."""
    # Compare in hundredths so float noise never refuses an exact fit.
    if round(needed * 100) <= round(left * 100):
        return
    raise QuotaError(
        f"Not enough LALAL.AI minutes: this separation needs {format_minutes(needed)} "
        f"minutes ({billable_seconds(duration)} s × {stems} stem{'s' if stems != 1 else ''}) "
        f"but only {format_minutes(max(left, 0.0))} are left on this key. Top up your "
        "lalal.ai account, choose fewer stems, or try the 60-second preview "
        "(1 minute per stem)."
    )


@dataclass(frozen=True)
class QuotaReport:
    quota_minutes: float
    used_minutes: float
    remaining_minutes: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def quota_report(remaining: float, used: float) -> QuotaReport:
    """The seed's shape. ``remaining_minutes`` is the provider's own figure, the
    truth; the API has no "plan size", so the quota is what this installation
    was charged (every node's tasks, cancelled ones included) plus what is left.
    Use on the key elsewhere (lalal.ai's site, another installation) is not in
    ``used_minutes``, so only ``remaining_minutes`` is exact."""
    remaining = max(remaining, 0.0)
    return QuotaReport(
        quota_minutes=round(used + remaining, 2),
        used_minutes=round(used, 2),
        remaining_minutes=round(remaining, 2),
    )


def get_quota(
    settings: Settings | None = None,
    api_key: str | SecretStr | None = None,
    ledger: UsageLedger | None = None,
    client: LalalaiClient | None = None,
) -> dict[str, float]:
    """``{"quota_minutes", "used_minutes", "remaining_minutes"}`` for the key a
    separation would use (``api_key`` > LALALAI_API_KEY > SYSTEM_…_KEY).
    Raises ``AuthError`` without a key, ``ProviderError`` if LALAL.AI fails."""
    settings = settings or get_settings()
    key = require_key(api_key, settings)
    own = client is None
    client = client or LalalaiClient(
        settings.lalalai_url, key,
        retry=RetryPolicy.for_settings(settings.lalalai_retry_base_delay),
    )
    try:
        remaining = client.minutes_left()  # the provider's figure: the truth
    finally:
        if own:
            client.close()
    if ledger is not None:
        return quota_report(remaining, ledger.used_minutes(key_id(key))).as_dict()
    opened = DatabaseUsageLedger.for_settings(settings)
    try:
        return quota_report(remaining, opened.used_minutes(key_id(key))).as_dict()
    finally:
        opened.close()
