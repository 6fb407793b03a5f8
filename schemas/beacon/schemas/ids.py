"""What an id looks like, once: job ids and catalogue ids travel inside Kafka keys joined with "|", in URLs
and in file names, so they are kept plain.

A region id also names topics and consumer groups (topics.py: `work.<region>`, `jobs.expanded.<region>`,
each with its dead-letter topic `<topic>.dlq`). So no id may end in `.dlq`: a region `x.dlq` would make its
work topic region x's dead-letter topic (its runner would take x's dead letters for work) and the recorder's
pattern, which skips dead-letter topics, would skip its expansions. Kafka refuses a topic whose name differs
from an existing one only in '.' versus '_' (they are the same in its metric names), so `_dlq` is refused
too, and in any letter case (topic folders collide on a case-insensitive disk). The rule holds for every id,
not only regions, so the one pattern below is all any check needs (the runner's --region, routing files, the
catalogue, events); catalogue.py also refuses two regions whose topics Kafka would confuse (us.east, us_east).
"""

from __future__ import annotations

import re

_CHAR = "A-Za-z0-9._-"
_FIRST = "[A-Za-z0-9]"
# The rest of an id (0-63 characters) that does not end in [._]dlq, spelt out by how it ends, since pydantic's
# regular expressions (Rust's) have no look-ahead: anything but q; q not after l; lq not after d; dlq not
# after '.' or '_'; or just q, lq, dlq.
_REST = (
    f"(?:[{_CHAR}]{{0,62}}[A-PR-Za-pr-z0-9._-]"
    f"|[{_CHAR}]{{0,61}}[A-KM-Za-km-z0-9._-][qQ]"
    f"|[{_CHAR}]{{0,60}}[A-CE-Za-ce-z0-9._-][lL][qQ]"
    f"|[{_CHAR}]{{0,59}}[A-Za-z0-9-][dD][lL][qQ]"
    "|(?:[dD]?[lL])?[qQ])"
)
ID_PATTERN = f"^{_FIRST}{_REST}?$"
ID_DESCRIPTION = (
    "Letters, digits, '.', '_' or '-'; 1-64, starting with a letter or digit, not ending in '.dlq' or '_dlq' "
    "(the suffix of dead-letter topics, which region ids name)."
)
DEAD_LETTER_SUFFIX = re.compile(r"[._]dlq\Z", re.IGNORECASE)
_ID = re.compile(ID_PATTERN)
_SHAPE = re.compile(rf"{_FIRST}[{_CHAR}]{{0,63}}")


def is_id(ident: str) -> bool:
    return _ID.fullmatch(ident) is not None


def dead_letter_problem(ident: str) -> str | None:
    """Why `ident`, which would be an id but for its ending, is not one (a clause for a message); else None."""
    if _SHAPE.fullmatch(ident) and DEAD_LETTER_SUFFIX.search(ident):
        return (
            f"it ends in {ident[-4:]!r}, the suffix of dead-letter topics: as a region it would name the "
            f"dead-letter topic of region {ident[:-4]!r} (work.<region>.dlq), and the recorder skips such topics"
        )
    return None


def id_problem(ident: str) -> str | None:
    """Why `ident` is not an id (a clause for a message), or None when it is one."""
    if _ID.fullmatch(ident):
        return None
    shape = "an id is letters, digits, '.', '_' or '-' (1-64, not starting with '.', '_' or '-')"
    return dead_letter_problem(ident) or shape


def topic_twin(region: str) -> str:
    """What Kafka compares region ids as, in the topic names they make: '.' and '_' are the same to it (in
    its metric names), and letter case is the same on a case-insensitive disk. Two regions with the same
    twin cannot both have their topics."""
    return region.replace(".", "_").casefold()
