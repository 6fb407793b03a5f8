"""What the runner needs from a model provider: one call in, the answer and every attempt out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from beacon.schemas.events import Attempt, ExecutionStatus, GenerationParams, TokenCounts


@dataclass(frozen=True)
class ModelCall:
    model_id: str
    model_name: str
    system_prompt: str  # applied exactly once, as the system message
    prompt: str  # one question per call
    params: GenerationParams
    category: str | None = None  # the question's category; real providers ignore it, `simulated` uses it
    region_display: str | None = None  # the region's display name, from the cell; likewise only for `simulated`


@dataclass
class ProviderResult:
    status: ExecutionStatus
    answer: str | None
    attempts: list[Attempt]
    provider_model: str | None = None
    tokens: TokenCounts | None = field(default=None)
    truncated: bool = False  # reading stopped at the answer limit


class Provider(Protocol):
    name: str
    endpoint: str | None  # the URL it calls, for the receipt; None for `simulated`
    max_answer_chars: int  # answers are cut here, while they are read where the reply streams

    async def call(self, call: ModelCall) -> ProviderResult: ...
