"""The submit command: what a user asks for. `JobSpec` checks its shape; `problems_with` checks it against
a catalogue (the active one is chosen by settings), so a spec means the same under any catalogue file.

What a spec may ask is bounded by what its JobSubmitted can carry (events.py's MAX_* limits: questions,
models, regions, languages, cells, text sizes), imported from there, so an accepted spec always makes a valid
event: a spec over a limit is refused naming the limit and the field, never a failure while the event is built.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from beacon.domain.catalogue import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, Catalogue, is_language
from beacon.domain.cells import cell_count
from beacon.schemas.events import (
    MAX_CELLS_PER_JOB,
    MAX_LANGUAGES_PER_JOB,
    MAX_MODELS_PER_JOB,
    MAX_PROMPT_CHARS,
    MAX_QUESTIONS_PER_JOB,
    MAX_REGIONS_PER_JOB,
    JobId,
    Language,
)
from beacon.schemas.ids import ID_PATTERN, dead_letter_problem, id_problem

JOB_ID_PATTERN = ID_PATTERN
Text = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]

MAX_DEADLINE_SECONDS = 7 * 24 * 3600
# The most tokens a job may ask of each call (a runner refuses any cell asking more).
MAX_TOKENS = 32768


class AdHocQuestion(BaseModel):
    """A question that is not in the catalogue, asked by this job only (recorded as ad hoc)."""

    model_config = ConfigDict(extra="forbid")

    id: JobId
    prompt: Text | None = Field(None, description="The text, in the catalogue's default language.")
    prompts: dict[Language, Text] | None = Field(
        None, max_length=MAX_LANGUAGES_PER_JOB, description='The text by language, e.g. {"zh": "…"}.'
    )
    category: JobId = "ad_hoc"

    @model_validator(mode="after")
    def _one_text(self) -> AdHocQuestion:
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give either `prompt` (in the catalogue's default language) or `prompts` by language")
        for text in [self.prompt, *(self.prompts or {}).values()]:
            if text is not None and not text.strip():
                raise ValueError("a prompt must not be blank")
        return self


Languages = Language | Annotated[dict[JobId, Language], Field(max_length=MAX_REGIONS_PER_JOB)]

ONE_LANGUAGE_PER_REGION = (
    "a region asks in one language per job: to ask the same questions in several languages, submit one job "
    'per language (e.g. "languages": "en", then "languages": "zh") and compare them with '
    "`beacon compare JOB_A JOB_B`"
)

# A question is a catalogue id (any text: an unknown one is the catalogue check's to name) or an ad-hoc
# question. Discriminated by its JSON type, so a bad item gets the one message of its own kind.
_TAGS = ("catalogue_id", "ad_hoc_question")
Question = Annotated[
    Annotated[str, Tag(_TAGS[0])] | Annotated[AdHocQuestion, Tag(_TAGS[1])],
    Discriminator(lambda v: _TAGS[0] if isinstance(v, str) else _TAGS[1]),
]


class JobSpec(BaseModel):
    """`beacon submit FILE` / `POST /jobs` body."""

    model_config = ConfigDict(extra="forbid")

    job_id: JobId | None = Field(
        None, description="Chosen by the client to make resubmission idempotent; generated when absent."
    )
    questions: list[Question] = Field(
        max_length=MAX_QUESTIONS_PER_JOB,
        description="Question ids from the catalogue, or ad-hoc questions ({id, prompt | prompts}). An empty "
        "list means one execution per (region, model), asked the catalogue's probe prompt.",
    )
    models: list[str] = Field(min_length=1, max_length=MAX_MODELS_PER_JOB, description="Model ids from the catalogue.")
    regions: list[str] = Field(
        min_length=1, max_length=MAX_REGIONS_PER_JOB, description="Region ids from the catalogue."
    )
    languages: Languages | None = Field(
        None,
        description='The language the questions are asked in: one for every region ("zh"), or one per region '
        '({"asia-pacific": "zh"}; regions left out use the catalogue\'s default language). Absent: the '
        "catalogue's default language. A region asks in one language per job: to compare languages, submit "
        "one job per language and run `beacon compare`.",
    )
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS)
    # Within ±(2^53 - 1): past that a JSON number is not exact in every language, and RFC 8785 (what is signed)
    # refuses it.
    seed: int | None = Field(
        None, ge=-(2**53 - 1), le=2**53 - 1, description="Sent to the model; an integer within ±(2^53 - 1)."
    )
    deadline_seconds: int | None = Field(
        None, ge=1, le=MAX_DEADLINE_SECONDS, description="Time the job may take; the settings' default when absent."
    )

    @field_validator("questions", "models", "regions")
    @classmethod
    def _listed_once(cls, v: list[str | AdHocQuestion], info: ValidationInfo) -> list[str | AdHocQuestion]:
        seen: set[str] = set()
        for i, item in enumerate(v):
            ident = item if isinstance(item, str) else item.id
            if ident in seen:
                raise ValueError(f"[{i}] {str(info.field_name)[:-1]} id {ident!r} is listed twice")
            seen.add(ident)
        return v

    @field_validator("languages", mode="before")
    @classmethod
    def _one_per_region(cls, v: object) -> object:
        """A list (for the job or for a region) is the old "several cells per region" shape: say what to do."""
        if isinstance(v, list) or (isinstance(v, dict) and any(isinstance(x, list) for x in v.values())):
            raise ValueError(ONE_LANGUAGE_PER_REGION)
        return v

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: Languages | None) -> Languages | None:
        for code in v.values() if isinstance(v, dict) else [v]:
            if code is not None and not is_language(code):
                raise ValueError(f"unknown language code {code!r} (ISO 639-1, like en, zh, zh-TW)")
        return v

    @model_validator(mode="after")
    def _languages_name_job_regions(self) -> JobSpec:
        if isinstance(self.languages, dict):
            for region in self.languages:
                if region not in self.regions:
                    raise ValueError(f"languages: {region!r} is not one of this job's regions {self.regions}")
        return self

    @model_validator(mode="after")
    def _cells_fit_an_event(self) -> JobSpec:
        cells = self.expected_executions
        if cells > MAX_CELLS_PER_JOB:
            raise ValueError(
                f"the job has {cells} cells (regions × models × questions); a job may have at most {MAX_CELLS_PER_JOB}"
            )
        return self

    def question_ids(self) -> list[str]:
        return [q if isinstance(q, str) else q.id for q in self.questions]

    def language_of(self, region: str, default: str) -> str:
        """The one language a region's cells are asked in."""
        chosen = self.languages.get(region) if isinstance(self.languages, dict) else self.languages
        return default if chosen is None else chosen

    @property
    def expected_executions(self) -> int:
        return cell_count(len(self.regions), len(self.models), len(self.questions))


def unknown_ids(kind: str, items: object, catalogue: Catalogue) -> list[str]:
    """`questions`, `models` or `regions` of a spec (parsed or not) naming ids the catalogue does not have; one
    that cannot be an id at all (e.g. a region ending in '.dlq') is told why."""
    table = {"questions": catalogue.questions, "models": catalogue.models, "regions": catalogue.regions}[kind]
    listed = items if isinstance(items, list) else []
    lines = []
    for i, ident in enumerate(listed[: _MAX_LISTED[kind]]):  # past the limit: the limit's own line says it
        if not isinstance(ident, str) or ident in table:  # an ad-hoc question is a table, not an id
            continue
        why = dead_letter_problem(ident)
        if why is not None:
            lines.append(f"{kind}[{i}]: {ident!r} is not a {kind[:-1]} id: {why}")
        else:
            lines.append(f"{kind}[{i}]: unknown {kind[:-1]} id {ident!r}; known: {', '.join(table)}")
    return lines


_MAX_LISTED = {"questions": MAX_QUESTIONS_PER_JOB, "models": MAX_MODELS_PER_JOB, "regions": MAX_REGIONS_PER_JOB}


def problems_with(spec: JobSpec, catalogue: Catalogue) -> list[str]:
    """What the catalogue cannot give this spec, one line per problem, each naming the field."""
    problems = [
        line
        for kind in ("questions", "models", "regions")
        for line in unknown_ids(kind, getattr(spec, kind), catalogue)
    ]
    for i, q in enumerate(spec.questions):
        if isinstance(q, AdHocQuestion) and q.id in catalogue.questions:
            problems.append(f"questions[{i}]: ad-hoc id {q.id!r} is a catalogue question; choose another id")
    if problems:
        return problems
    asked = list(dict.fromkeys(spec.language_of(r, catalogue.default_language) for r in spec.regions))
    if len(asked) > MAX_LANGUAGES_PER_JOB:
        problems.append(
            f"languages: the job asks in {len(asked)} languages ({', '.join(asked)}); "
            f"a job asks in at most {MAX_LANGUAGES_PER_JOB}"
        )
        return problems
    missing: dict[tuple[int, str], list[str]] = {}  # (question index, language) → regions asking it so
    for region in spec.regions:
        lang = spec.language_of(region, catalogue.default_language)
        if lang not in catalogue.regions[region].system_prompts:
            problems.append(f"languages: region {region!r} has no system prompt in {lang!r} in the catalogue")
        if not spec.questions and lang not in catalogue.probe_prompts:
            problems.append(f"languages: the catalogue's probe prompt has no {lang!r} text")
        for i, q in enumerate(spec.questions):
            texts = catalogue.questions[q].prompts if isinstance(q, str) else ad_hoc_prompts(q, catalogue)
            if lang not in texts:
                missing.setdefault((i, lang), []).append(region)
    for (i, lang), regions in missing.items():
        problems.append(
            f"questions[{i}]: {spec.question_ids()[i]!r} has no {lang!r} prompt (asked in {lang!r} by "
            f"{', '.join(regions)})"
        )
    return sorted(set(problems), key=problems.index)


def ad_hoc_prompts(q: AdHocQuestion, catalogue: Catalogue) -> dict[str, str]:
    return dict(q.prompts) if q.prompts is not None else {catalogue.default_language: q.prompt or ""}


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the field, e.g. "questions[2]: id 'x' is listed twice"."""
    lines = []
    for err in exc.errors(include_url=False):
        parts = [p for p in err["loc"] if p not in _TAGS]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "body"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "too_long" and "max_length" in err.get("ctx", {}):  # pydantic says "…, not more"
            actual = err["ctx"].get("actual_length")
            kind = "items" if msg.startswith(("List", "Dictionary")) else "characters"
            msg = f"{msg.split(' ', 1)[0]} should have at most {err['ctx']['max_length']} {kind}"
            msg += f", not {actual}" if isinstance(actual, int) else ""
        if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == ID_PATTERN:
            shown = err["input"] if len(err["input"]) <= 100 else err["input"][:100] + "…"
            msg = f"{shown!r} is not an id: {id_problem(err['input'])}"  # the pattern itself says little
        if err["type"] == "json_invalid":
            field, msg = "body", f"not valid JSON ({err.get('ctx', {}).get('error', msg)})"
        if msg.startswith("["):  # our own validators put the list index first
            index, _, msg = msg.partition("] ")
            field = f"{field}{index}]"
        lines.append(f"{field}: {msg}")
    return lines
