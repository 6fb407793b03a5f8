"""The catalogue: which questions, models and regions a job may name, and the words it asks them with.

It is data — `catalogue.toml` beside this module ships as the default (package data), `BEACON_CATALOGUE_FILE`
selects another; reading either is the caller's job (beacon.infra.catalogues). Parsed and checked here (pure:
text in, `Catalogue` or `CatalogueError` out). Only the submitter and the read side
read it: a JobSubmitted carries every text its cells need, so runners never need the file, and a catalogue
changed later never changes what an old job asked. Its version (a hash of the content, plus an optional
label) goes into every JobSubmitted, so every result says which wording was asked.

Its limits are the events' (beacon.schemas.events), imported, so a catalogue can never hold what a
JobSubmitted could not carry: as many questions, models and regions as one job may name, texts and names as
long as an event's. Parsing costs time in proportion to the text: header lines are indexed once, and a
section with more entries than its limit is refused without looking at them — before the TOML is parsed, at
the first entry over the limit, when its lines say so ([questions.ID] headers, dotted keys).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from beacon.schemas.events import (
    LANGUAGE_PATTERN,
    MAX_LABEL_CHARS,
    MAX_MODEL_NAME_CHARS,
    MAX_MODELS_PER_JOB,
    MAX_PROMPT_CHARS,
    MAX_QUESTIONS_PER_JOB,
    MAX_REGION_DISPLAY_CHARS,
    MAX_REGIONS_PER_JOB,
)
from beacon.schemas.ids import ID_PATTERN, id_problem, topic_twin

DEFAULT_TEMPERATURE = 0.1
DEFAULT_MAX_TOKENS = 500
# A section may hold as many entries as one job may name: a JobSubmitted carrying them all must be valid.
MAX_ENTRIES = {"questions": MAX_QUESTIONS_PER_JOB, "models": MAX_MODELS_PER_JOB, "regions": MAX_REGIONS_PER_JOB}

# ISO 639-1: the two-letter language codes. A code may carry a region or script subtag (zh-TW, sr-Latn).
ISO_639_1 = frozenset(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz"
    " ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik"
    " io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml"
    " mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd"
    " se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi"
    " vo wa wo xh yi yo za zh zu".split()
)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
_ID = re.compile(ID_PATTERN)


def is_language(code: str) -> bool:
    return _LANGUAGE.fullmatch(code) is not None and code[:2] in ISO_639_1


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    prompts: dict[str, str]  # language → text
    notes: str | None = None


@dataclass(frozen=True)
class Model:
    id: str
    name: str


@dataclass(frozen=True)
class Region:
    id: str
    display: str
    system_prompts: dict[str, str]  # language → text


@dataclass(frozen=True)
class Catalogue:
    questions: dict[str, Question]
    models: dict[str, Model]
    regions: dict[str, Region]
    probe_prompts: dict[str, str]
    default_language: str
    label: str | None = None
    source: str = "(text)"
    version: str = field(default="", compare=False)

    def languages(self) -> list[str]:
        """Every language some text of the catalogue is written in, the default first."""
        found = {lang for q in self.questions.values() for lang in q.prompts}
        found |= {lang for r in self.regions.values() for lang in r.system_prompts}
        return [self.default_language, *sorted(found - {self.default_language})]

    def describe(self) -> str:
        return f"{self.label or 'unlabelled'} ({self.version})"


class CatalogueError(ValueError):
    """Every problem of a catalogue file, one line each, naming the file, the line and the field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"catalogue {source} is not valid:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


# --- parsing -------------------------------------------------------------------------------------------


_HEADER = re.compile(r"\s*\[(?!\[)\s*((?:[^\]\"']|\"[^\"]*\"|'[^']*')*?)\s*\]")
_PART = re.compile(r"\s*(?:\"([^\"]*)\"|'([^']*)'|([^.\s\"']+))\s*(?:\.|\Z)")


def _header_parts(inside: str) -> tuple[str, ...] | None:
    """`questions . "q1"` → ("questions", "q1"): the dotted name of a table header, its quotes taken off."""
    parts, at = [], 0
    while at < len(inside):
        match = _PART.match(inside, at)
        if match is None or match.end() == at:
            return None
        parts.append(next(g for g in match.groups() if g is not None))
        at = match.end()
    return tuple(parts)


class _Lines:
    """Finds the line a table or key of the TOML text is on, for messages (tomllib keeps no positions).

    One pass over the text indexes every table header and every line that starts a table (a line starting
    with '['); a table's keys are indexed the first time one of them is asked for. Every lookup is then a
    dictionary's, so the cost of every message together is in proportion to the text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._tables: dict[tuple[str, ...], int] = {}  # ("questions", "q1") → index of its header line
        self._first: dict[str, int] = {}  # "questions" → index of the first header under it (or of it)
        self._breaks: list[int] = []  # indexes of the lines that end a table: each starts with '['
        self._keys: dict[int, dict[str, int]] = {}  # a table's header index → {key: its 1-based line}
        self._top: dict[str, int] | None = None
        for i, line in enumerate(self.lines):
            if not line.lstrip().startswith("["):
                continue
            self._breaks.append(i)
            match = _HEADER.match(line)
            parts = _header_parts(match.group(1)) if match else None
            if not parts:
                continue
            self._tables.setdefault(parts, i)
            self._first.setdefault(parts[0], i)

    def of(self, section: str, name: str | None = None, key: str | None = None) -> int | None:
        start = self._start(section, name)
        if start is None:
            return None
        return (self._key(start, key) if key is not None else None) or start + 1

    def _start(self, section: str, name: str | None) -> int | None:
        return self._tables.get((section, name) if name is not None else (section,))

    def _key(self, start: int, key: str) -> int | None:
        """The line of `key` (or of a dotted key under it) within the table opened at `start`."""
        keys = self._keys.get(start)
        if keys is None:
            after = bisect.bisect_right(self._breaks, start)
            end = self._breaks[after] if after < len(self._breaks) else len(self.lines)
            keys = self._keys[start] = _keys_of(self.lines, start + 1, end)
        return keys.get(key)

    def texts(self, section: str, name: str | None, key: str) -> Callable[[str | None], int | None]:
        """The line of `key.<lang>` in a table; else of `key`; else of the table's header."""

        def line_of(lang: str | None) -> int | None:
            start = self._start(section, name)
            if start is None:
                return None
            exact = self._key(start, f"{key}.{lang}") if lang is not None else None
            return exact or self._key(start, key) or start + 1

        return line_of

    def top(self, key: str) -> int | None:
        found = self._first.get(key)  # a misspelt section: [regoins.x]
        if found is not None:
            return found + 1
        if self._top is None:  # the keys before the first table
            self._top = _keys_of(self.lines, 0, self._breaks[0] if self._breaks else len(self.lines), dotted=False)
        return self._top.get(key)


def _keys_of(lines: list[str], start: int, end: int, dotted: bool = True) -> dict[str, int]:
    """Each key set on lines[start:end] → the 1-based line that first sets it. `prompts.en = …` sets
    `prompts.en` and, when `dotted`, also `prompts` (the table it is in)."""
    keys: dict[str, int] = {}
    for i in range(start, end):
        line = lines[i].lstrip()
        assign = line.find("=")
        name = line[:assign] if assign >= 0 else line
        if dotted:
            for at, char in enumerate(name):
                if char == ".":
                    keys.setdefault(name[:at].rstrip(), i + 1)
        if assign >= 0:
            keys.setdefault(name.rstrip(), i + 1)
    return keys


class _Problems:
    def __init__(self, text: str) -> None:
        self.where = _Lines(text)
        self.found: list[str] = []

    def add(self, line: int | None, place: str, message: str) -> None:
        self.found.append(f"line {line}: {place}: {message}" if line else f"{place}: {message}")


def _texts(
    raw: Any, place: str, line_of: Callable[[str | None], int | None], problems: _Problems, required: str | None
) -> dict[str, str]:
    """A table language → text: known codes, no blank text, the required (default) language present.
    `line_of(lang)` is the line of that language's entry (None: of the table)."""
    line = line_of(None)
    if not isinstance(raw, dict) or not raw:
        problems.add(line, place, 'must be a table of language = text, e.g. en = "…"')
        return {}
    out: dict[str, str] = {}
    for lang, text in raw.items():
        if not is_language(lang):
            problems.add(
                line_of(lang), f"{place}.{lang}", f"unknown language code {lang!r} (ISO 639-1, like en, zh, zh-TW)"
            )
        elif not isinstance(text, str) or not text.strip():
            problems.add(line_of(lang), f"{place}.{lang}", "must be a text that is not empty")
        elif len(text) > MAX_PROMPT_CHARS:
            problems.add(line_of(lang), f"{place}.{lang}", f"is {len(text)} characters; at most {MAX_PROMPT_CHARS}")
        else:
            out[lang] = text
    if required is not None and required not in raw:
        problems.add(line, place, f"has no text in the default language {required!r}")
    return out


def _unknown_keys(
    table: dict[str, Any], allowed: set[str], place: str, line_of: Callable[[str], int | None], problems: _Problems
) -> None:
    for key in sorted(set(table) - allowed):
        problems.add(line_of(key), f"{place}.{key}", f"unknown field (known: {', '.join(sorted(allowed))})")


def _too_many(section: str, count: int) -> str:
    return f"{count} entries; {_too_many_why(section)}"


# What defines an entry, line by line, enough to count a section's entries before parsing: a header
# [questions.ID] (or [questions.ID.sub]), a key ID.… or ID = … in a [questions] table, a key questions.ID.… at
# the top. (Entries in one inline table, questions = {…}, are counted once the TOML is parsed.)
_KEY = r"""(?:([A-Za-z0-9_-]+)|"([^"\\\n]*)"|'([^'\n]*)')"""
_DEFINES = re.compile(
    rf"^[ \t]*(?:\[(?!\[)(?P<header>[^\]\n]*)\]|(?P<key>{_KEY}[ \t]*(?:\.[ \t]*{_KEY}[ \t]*)?[.=]))",
    re.MULTILINE,
)


def _over_a_limit(text: str) -> str | None:
    """The first section whose entries, as its lines define them, pass its limit, found before the TOML is
    parsed and without reading past the first entry over it; None when none does (the parsed tables are
    then counted again)."""
    seen: dict[str, set[str]] = {section: set() for section in MAX_ENTRIES}
    table: tuple[str, ...] = ()  # the table the lines are in
    for match in _DEFINES.finditer(text):
        if match.group("header") is not None:
            table = _header_parts(match.group("header").strip()) or ("?",)
            section, name = table[0], table[1] if len(table) >= 2 else None
        else:
            first, second = _first_of(match.groups()[2:5]), _first_of(match.groups()[5:8])
            if len(table) == 1:  # [questions] then q1.category = …
                section, name = table[0], first
            elif not table:  # questions.q1.category = … before any table
                section, name = first, second
            else:
                continue
        if name is None or section not in seen:
            continue
        names = seen[section]
        names.add(name)
        if len(names) > MAX_ENTRIES[section]:
            line = text.count("\n", 0, match.start()) + 1
            return f"line {line}: {section}: more than {MAX_ENTRIES[section]} entries; {_too_many_why(section)}"
    return None


def _first_of(groups: tuple[str | None, ...]) -> str | None:
    return next((g for g in groups if g is not None), None)


def _too_many_why(section: str) -> str:
    limit = MAX_ENTRIES[section]
    return f"at most {limit} (as many as one job may name: a JobSubmitted carries at most {limit} {section})"


def _entries(data: dict[str, Any], section: str, problems: _Problems) -> dict[str, dict[str, Any]]:
    raw = data.get(section)
    if not isinstance(raw, dict) or not raw:
        problems.add(problems.where.of(section), section, f"at least one [{section}.ID] table is needed")
        return {}
    if len(raw) > MAX_ENTRIES[section]:  # stop here: none of them can be used, so none is looked at
        problems.add(problems.where.top(section), section, _too_many(section, len(raw)))
        return {}
    out = {}
    for ident, table in raw.items():
        line = problems.where.of(section, ident)
        if not _ID.fullmatch(ident):
            problems.add(line, f"{section}.{ident}", id_problem(ident) or "not an id")
        elif not isinstance(table, dict):
            problems.add(line, f"{section}.{ident}", f"must be a table ([{section}.{ident}])")
        else:
            out[ident] = table
    return out


def parse(text: str, source: str = "(text)") -> Catalogue:
    """TOML text → Catalogue; raises CatalogueError listing every problem, each with its line."""
    over = _over_a_limit(text)
    if over is not None:
        raise CatalogueError(source, [over])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message names the line and column
        raise CatalogueError(source, [f"not valid TOML: {exc}"]) from None
    problems = _Problems(text)
    where = problems.where
    _unknown_keys(
        data, {"label", "default_language", "probe", "questions", "models", "regions"}, "(top)", where.top, problems
    )

    label = data.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS):
        problems.add(where.top("label"), "label", f"must be a short text (1-{MAX_LABEL_CHARS} characters)")
        label = None
    default = data.get("default_language", "en")
    if not isinstance(default, str) or not is_language(default):
        problems.add(where.top("default_language"), "default_language", f"unknown language code {default!r}")
        default = "en"

    probe_table = data.get("probe")
    probe: dict[str, str] = {}
    if not isinstance(probe_table, dict):
        problems.add(
            None, "probe", "a [probe] table with prompts.<language> is needed (asked by jobs without questions)"
        )
    else:
        _unknown_keys(probe_table, {"prompts"}, "probe", partial(where.of, "probe", None), problems)
        probe = _texts(
            probe_table.get("prompts"), "probe.prompts", where.texts("probe", None, "prompts"), problems, default
        )

    questions = {}
    for ident, table in _entries(data, "questions", problems).items():
        place = f"questions.{ident}"
        _unknown_keys(table, {"category", "prompts", "notes"}, place, partial(where.of, "questions", ident), problems)
        category = table.get("category")
        if not isinstance(category, str) or not _ID.fullmatch(category):
            problems.add(where.of("questions", ident, "category"), f"{place}.category", "must be a slug, e.g. control")
        notes = table.get("notes")
        if notes is not None and not isinstance(notes, str):
            problems.add(where.of("questions", ident, "notes"), f"{place}.notes", "must be a text")
        prompts = _texts(
            table.get("prompts"), f"{place}.prompts", where.texts("questions", ident, "prompts"), problems, default
        )
        questions[ident] = Question(ident, str(category), prompts, notes if isinstance(notes, str) else None)

    models = {}
    for ident, table in _entries(data, "models", problems).items():
        place = f"models.{ident}"
        _unknown_keys(table, {"name"}, place, partial(where.of, "models", ident), problems)
        name = table.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_NAME_CHARS:
            problems.add(
                where.of("models", ident, "name"),
                f"{place}.name",
                f"must be a display name (1-{MAX_MODEL_NAME_CHARS} characters)",
            )
        models[ident] = Model(ident, str(name))

    regions = {}
    twins: dict[str, str] = {}
    for ident, table in _entries(data, "regions", problems).items():
        place = f"regions.{ident}"
        twin = twins.setdefault(topic_twin(ident), ident)
        if twin != ident:
            problems.add(
                where.of("regions", ident),
                place,
                f"its topics would collide with region {twin!r}'s: Kafka takes '.' and '_' in topic names for the "
                "same, and letter case is the same on a case-insensitive disk; choose an id that differs otherwise",
            )
        _unknown_keys(table, {"display", "system_prompts"}, place, partial(where.of, "regions", ident), problems)
        display = table.get("display")
        if not isinstance(display, str) or not display.strip() or len(display) > MAX_REGION_DISPLAY_CHARS:
            problems.add(
                where.of("regions", ident, "display"),
                f"{place}.display",
                f"must be a short name (1-{MAX_REGION_DISPLAY_CHARS} characters)",
            )
        system = _texts(
            table.get("system_prompts"),
            f"{place}.system_prompts",
            where.texts("regions", ident, "system_prompts"),
            problems,
            default,
        )
        regions[ident] = Region(ident, str(display), system)

    if problems.found:
        raise CatalogueError(source, problems.found)
    catalogue = Catalogue(questions, models, regions, probe, default, label, source)
    return _versioned(catalogue)


def _versioned(c: Catalogue) -> Catalogue:
    """The version is a hash of what the catalogue says (not of its bytes: comments and layout don't count)."""
    content = {
        "default_language": c.default_language,
        "probe": c.probe_prompts,
        "questions": {q.id: [q.category, q.prompts, q.notes] for q in c.questions.values()},
        "models": {m.id: m.name for m in c.models.values()},
        "regions": {r.id: [r.display, r.system_prompts] for r in c.regions.values()},
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return Catalogue(**{**c.__dict__, "version": f"sha256:{digest[:16]}"})
