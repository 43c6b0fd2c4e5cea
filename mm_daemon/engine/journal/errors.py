"""Why a journal cannot be used: each error's str() is one line naming the file and what to do."""

from __future__ import annotations

__all__ = ["JournalCorruptError", "JournalError", "JournalLockedError", "JournalSchemaError"]


class JournalError(Exception):
    """A journal that cannot be opened or read; the file is left as it was."""


class JournalLockedError(JournalError):
    """Another process holds the journal (two daemons on one account is the classic disaster)."""


class JournalCorruptError(JournalError):
    """The file is unreadable, not a journal, or fails SQLite's integrity check."""


class JournalSchemaError(JournalError):
    """The journal was written by a newer version of mm-daemon."""
