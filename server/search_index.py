"""SQLite's full-text index of a table: an FTS5 table over its title and description, kept in
step by triggers. Migration 0012 makes both; a migration that rebuilds the table in batch mode
drops its triggers with the old table, and makes them again with :func:`sqlite_triggers`."""

from __future__ import annotations


def sqlite_table(table: str) -> list[str]:
    """The statements making the FTS5 table of ``table`` (one of ours: never input)."""
    return [
        f"CREATE VIRTUAL TABLE search_{table} USING fts5(title, description, "
        f"content='{table}', content_rowid='rowid', tokenize='unicode61 remove_diacritics 0')"
    ]


def sqlite_triggers(table: str) -> list[str]:
    """The triggers of ``table``'s index, then a rebuild (a rebuilt table's rowids may differ)."""
    search = f"search_{table}"
    new = (
        f"INSERT INTO {search}(rowid, title, description) "  # noqa: S608
        "VALUES (new.rowid, new.title, new.description);"
    )
    old = (
        f"INSERT INTO {search}({search}, rowid, title, description) "  # noqa: S608
        "VALUES ('delete', old.rowid, old.title, old.description);"
    )
    return [
        f"CREATE TRIGGER {search}_insert AFTER INSERT ON {table} BEGIN {new} END",
        f"CREATE TRIGGER {search}_delete AFTER DELETE ON {table} BEGIN {old} END",
        f"CREATE TRIGGER {search}_update AFTER UPDATE OF title, description ON {table} "
        f"BEGIN {old} {new} END",
        f"INSERT INTO {search}({search}) VALUES ('rebuild')",  # noqa: S608
    ]
