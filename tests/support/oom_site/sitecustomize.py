"""Loaded by processes started with this folder on PYTHONPATH (the tests' own
fault injection): HTDemucs runs out of "GPU memory" on any window longer than
SOUNDFORGE_TEST_OOM_SECONDS, as a real card would on a segment too long for it.
The engine's own retry with shorter segments must then carry the job."""

import os

_limit = os.environ.get("SOUNDFORGE_TEST_OOM_SECONDS")
if _limit:
    import torch
    from demucs.htdemucs import HTDemucs

    _forward = HTDemucs.forward

    def _forward_with_a_small_card(self, mix):  # type: ignore[no-untyped-def]
        if mix.shape[-1] > float(_limit) * self.samplerate:
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (test card)"
            )
        return _forward(self, mix)

    HTDemucs.forward = _forward_with_a_small_card
