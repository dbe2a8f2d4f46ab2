"""Where a service gets contracts from: loaded at start-up, read on every message.

The classifier issue moves the source to a watched KV bucket; services only see ``book``.
"""

import logging
from pathlib import Path

from opora_shared.contracts import ContractBook

log = logging.getLogger(__name__)


class ContractStore:
    """Holds the current ContractBook; ``load`` replaces it atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._book: ContractBook | None = None

    def load(self) -> ContractBook:
        """(Re)load every contract file; a bad file raises ContractError naming it."""
        book = ContractBook.from_dir(self.directory)
        self._book = book
        log.info("loaded contracts: %s", ", ".join(c.tenant for c in book))
        return book

    @property
    def book(self) -> ContractBook:
        """The current contracts (loading them on first use)."""
        return self._book if self._book is not None else self.load()
