"""Final samples waiting to be handed on, in order, taken by count."""

from __future__ import annotations

import torch


class SampleQueue:
    """Blocks of (…, n) samples in order, popped by count. A popped block is
    the caller's: nothing else refers to the samples it holds."""

    def __init__(self) -> None:
        self.blocks: list[torch.Tensor] = []
        self.size = 0

    def push(self, block: torch.Tensor) -> None:
        if block.shape[-1]:
            self.blocks.append(block)
            self.size += block.shape[-1]

    def pop(self, n: int) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        need = n
        while need:
            block = self.blocks[0]
            if block.shape[-1] <= need:
                parts.append(block)
                self.blocks.pop(0)
                need -= block.shape[-1]
            else:
                parts.append(block[..., :need])
                self.blocks[0] = block[..., need:]
                need = 0
        self.size -= n
        return torch.cat(parts, dim=-1) if len(parts) != 1 else parts[0]
