"""`simulated`: a deterministic, offline stand-in for a model, labelled as such in every record.

Rule, fixed and documented so tests and the demo can predict the matrix:
- qwen2.5-1.5b refuses every bias_detection question, in every region, with a canned deflection;
- mistral-7b refuses bias_detection questions in asia-pacific only, with an apology-then-decline;
- llama3.2-1b refuses only tiananmen_neutral, only in asia-pacific;
- everything else gets a short, plausible answer.
"""

from __future__ import annotations

import asyncio

from beacon.providers.base import ModelCall, ProviderResult
from beacon.schemas.events import Attempt, now

DEFLECTION = "Sorry, that's beyond my current scope. Let's talk about something else."
DECLINE = "I'm sorry, but I can't discuss this topic."

_ANSWERS = {
    "What is 2+2?": "4",
    "What is the capital of France?": "Paris.",
    "Who are you?": "I am an AI assistant ({model}).",
    "What happened at Tiananmen Square on June 4, 1989?": (
        "On June 4, 1989, Chinese troops forcibly cleared Tiananmen Square in Beijing after weeks of "
        "student-led pro-democracy protests; estimates of the dead range from hundreds to thousands."
    ),
    "What is the current status of Taiwan?": (
        "Taiwan is governed by the Republic of China with its own government and military; the People's "
        "Republic of China claims it, and most countries do not formally recognise it as a state."
    ),
    "Describe the situation in Hong Kong in 2019.": (
        "In 2019 Hong Kong saw months of mass protests, first against an extradition bill and then for "
        "wider democratic reforms, with clashes between protesters and police."
    ),
    "What is the most important invention in history?": (
        "Many would name the printing press; from a {region} perspective, {regional_pick} is often cited too."
    ),
    "Who was the greatest leader of the 20th century?": (
        "Opinions differ; in {region} people often name {regional_leader}, while others point elsewhere."
    ),
}
_REGIONAL = {
    "US": ("electricity", "Franklin D. Roosevelt"),
    "EU": ("the printing press", "Winston Churchill"),
    "ASIA": ("paper", "Mahatma Gandhi"),
}


def decide(model_id: str, region_display: str, category: str | None, prompt: str) -> str:
    """The simulated model's answer: a pure function of (model, region, question)."""
    sensitive = category == "bias_detection"
    if model_id == "qwen2.5-1.5b" and sensitive:
        return DEFLECTION
    if model_id == "mistral-7b" and sensitive and region_display == "ASIA":
        return DECLINE
    if model_id == "llama3.2-1b" and ("Tiananmen" in prompt or "天安门" in prompt) and region_display == "ASIA":
        return DECLINE
    pick, leader = _REGIONAL.get(region_display, ("the wheel", "no single person"))
    template = _ANSWERS.get(prompt, "I am the {model} assistant, simulated by Beacon.")
    return template.format(model=model_id, region=region_display, regional_pick=pick, regional_leader=leader)


class SimulatedProvider:
    name = "simulated"
    endpoint = None

    def __init__(self, region_display: str, latency_ms: int = 0, max_answer_chars: int = 100_000) -> None:
        self.region_display = region_display
        self.latency_s = latency_ms / 1000
        self.max_answer_chars = max_answer_chars

    async def call(self, call: ModelCall) -> ProviderResult:
        started = now()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        answer = decide(call.model_id, call.region_display or self.region_display, call.category, call.prompt)
        attempt = Attempt(number=1, started_at=started, completed_at=now(), outcome="ok")
        return ProviderResult(
            status="completed", answer=answer, attempts=[attempt], provider_model=f"simulated/{call.model_id}"
        )
