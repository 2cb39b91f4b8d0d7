"""Who owns a state partition's changelogs: claims, which fence out a zombie's writes.

Two workers can write one state partition's changelogs at once: one frozen past its
session timeout (a zombie) resumes and stores the batch it was in before it learns that
the partition moved, while the worker the group gave the partition to writes too. Each
changelog record is one key's whole value, and a recovery takes each key's last record,
so without a fence a recovery would mix the two workers' states.

At every rebalance, before Faust recovers them, a worker *claims* each state partition
it is assigned: it appends a claim, a record naming a fresh token, to each of the
partition's changelogs, and tags every record it writes there with that token (header
``kappa-writer``). A reader of the changelog (a recovery, a standby) skips every record
tagged with another token than the last claim's: a write made after the partition was
claimed away from its writer. The new owner's recovery reads past its own claim, so it
holds every record written before it; whatever the zombie writes after it is skipped.
The zombie notices the claim between its last record and its new ones before it writes
them to its own RocksDB (``TableBuffer.fenced_out``), so its local store never holds
what the changelog's readers skip.

Records without the header (written by Faust itself, for a custom agent's table) are
always read. Every reader follows the claims the same way (``admitted``): Faust's
recovery and standbys (``tables.faust_store.BudgetedStore``) and the PostgreSQL sink
(``app.sink.run``), which keeps the last claim it read with its offsets.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

WRITER_HEADER = "kappa-writer"
# Where a store keeps the token of the last claim it read, as Faust keeps its offset:
# a key outside every JSON key's range, which no table read meets.
OWNER_KEY = b"__kappa\x00owner__"


def new_token() -> bytes:
    """A claim's token: a random number's digits."""
    return str(secrets.randbits(62) + 1).encode()


def claim_key(token: bytes) -> bytes:
    """A claim's changelog key: its token as a negative JSON number. Faust's recovery
    decodes every key as JSON, and a table's keys are all JSON strings, so no key can
    be taken for a claim; and each claim has its own key, so compaction (which keeps
    each key's last record) never drops a claim that a later one replaced."""
    return b"-" + token


def claimed_by(key: bytes | None) -> bytes | None:
    """The token a claim's key names; None for any other record."""
    if key is None or key[:1] != b"-":
        return None
    return key[1:]


def writer_of(headers: Iterable[tuple[str, bytes]] | None) -> bytes | None:
    """The token a record was written with; None for a record without one."""
    for name, value in headers or ():
        if name == WRITER_HEADER:
            return value
    return None


def admitted(owner: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """Whether a record that is no claim belongs to its partition's state: written by
    the ``owner`` (the token of the last claim read before it), or by no claimant."""
    writer = writer_of(headers)
    return writer is None or writer == owner


def writer_headers(token: bytes | None) -> list[tuple[str, bytes]] | None:
    return None if token is None else [(WRITER_HEADER, token)]


def last_claim(records: Iterable[Any]) -> bytes | None:
    """The token of the last claim among ``records`` (each with a ``key``), if any."""
    owner = None
    for record in records:
        if (token := claimed_by(record.key)) is not None:
            owner = token
    return owner
