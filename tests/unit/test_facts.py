"""One definition for each fact (issue 13): the database's CHECK lists are the Python enums'."""

from __future__ import annotations

import re

from beacon.infra.projection import CLASSIFICATION_COLUMNS, EXECUTION_COLUMNS, JOB_COLUMNS
from beacon.schemas.events import CLASSIFICATIONS, EXECUTION_STATUSES
from tests.paths import MIGRATIONS


def checks(column: str) -> list[set[str]]:
    """Every `<column> … CHECK (<column> IN ('a', 'b'))` in the migrations, as sets of values."""
    sql = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
    found = re.findall(rf"CHECK \({column} IN \(([^)]*)\)\)", sql)
    return [set(re.findall(r"'([^']*)'", values)) for values in found]


def test_status_check_is_the_enum() -> None:
    assert checks("status") == [set(EXECUTION_STATUSES)]


def test_classification_checks_are_the_enum() -> None:
    found = checks("classification")
    assert len(found) == 2  # executions and classifications
    assert all(values == set(CLASSIFICATIONS) for values in found)


def test_column_lists_name_real_columns() -> None:
    sql = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
    for column in {*EXECUTION_COLUMNS, *JOB_COLUMNS, *CLASSIFICATION_COLUMNS}:
        assert re.search(rf"^\s+{column}\s", sql, re.M) or f"ADD COLUMN {column}" in sql, column
