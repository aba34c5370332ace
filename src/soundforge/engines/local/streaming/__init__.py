"""Streaming separation: decode → separate → write, in bounded memory.

* ``stats``: the first decoding pass (normalisation, length);
* ``feed``: the decoded mix as a sliding window;
* ``protocol``: the ``StemStream`` protocol every model family implements, and
  ``run_streams``, which drives one or several streams over one feed;
* ``plan`` and ``demucs_stream``: Demucs models, with ``apply_model``'s
  segments, shifts, bag weights and arithmetic.
"""

from soundforge.engines.local.streaming.demucs_stream import Combiner, DemucsStream
from soundforge.engines.local.streaming.feed import MixFeed
from soundforge.engines.local.streaming.plan import (
    Job,
    Member,
    Pass,
    Plan,
    bag_members,
    consumes_random,
    make_plan,
    overlap_weight,
)
from soundforge.engines.local.streaming.protocol import (
    Combine,
    Emit,
    StemStream,
    only,
    run_streams,
)
from soundforge.engines.local.streaming.queue import SampleQueue
from soundforge.engines.local.streaming.stats import MixStats, RunningStats, guard_std

__all__ = [
    "Combine",
    "Combiner",
    "DemucsStream",
    "Emit",
    "Job",
    "Member",
    "MixFeed",
    "MixStats",
    "Pass",
    "Plan",
    "RunningStats",
    "SampleQueue",
    "StemStream",
    "bag_members",
    "consumes_random",
    "guard_std",
    "make_plan",
    "only",
    "overlap_weight",
    "run_streams",
]
