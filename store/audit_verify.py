"""Verifying the audit log's hash chains (`docstream audit verify`); see store.audit_chain.

Each chain is walked in `seq` order: every record's hash must be the hash of its fields (so
a changed field shows), its `prev_hash` the stored hash of the record before it (so a record
deleted, inserted or moved breaks the link at the next one), the first one's GENESIS. Then
the chain's last record and length must be its head in audit_heads (so a record deleted at
the end shows), and, given heads kept outside the database (a run's summary or
`--audit-head-out` file, or a bare hash), the chain must hold each of them at its length (so
a tail cut off together with a head reset to an earlier hash shows).

With the key (store.audit_chain.audit_key_from_env) the hashes are checked as HMACs, and a
chain that audit_heads says is unkeyed is itself a problem (a chain recomputed without the
key), unless `allow_unkeyed`; without the key, plain hashes are checked and a keyed chain
cannot be: `StoreError`. Records without a chain are counted as older than the chains when
they come before the first chained record, and are problems after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from .audit_chain import GENESIS, AuditHead, AuditKey, record_hash, run_of
from .errors import StoreError
from .tables import AuditHeadRow, AuditRow

MAX_PER_CHAIN = 20  # broken records listed per chain; the rest are counted
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain(text: str | None) -> str:
    """`text` on one line: control characters as \\xNN escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))


@dataclass(frozen=True)
class Problem:
    """One thing wrong: a record (with its seq, run and position) or a chain."""

    what: str
    chain: str | None = None
    seq: int | None = None
    run_id: str | None = None
    position: str | None = None

    def line(self) -> str:
        if self.seq is not None:
            return (f"seq {self.seq} (run {_plain(self.run_id)}, position "
                    f"{_plain(self.position)}, chain {_plain(self.chain)}): {self.what}")
        return f"chain {_plain(self.chain)}: {self.what}" if self.chain else self.what

    @property
    def order(self) -> tuple[int, int, str]:
        """Broken records first, by seq; then chains."""
        return (0, self.seq, "") if self.seq is not None else (1, 0, self.chain or "")


@dataclass(frozen=True)
class Verification:
    records: int
    chains: int
    keyed: bool  # checked as HMACs with a key
    unkeyed_allowed: int = 0
    older: int = 0
    external: int = 0
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """The one line of a verification without problems."""
        line = f"verified {self.records:,} records in {self.chains:,} chains"
        line += (" (keyed: HMAC-SHA256" if self.keyed
                 else " (unkeyed: plain SHA-256, no DOCSTREAM_AUDIT_KEY set")
        if self.unkeyed_allowed:
            line += f"; {self.unkeyed_allowed} unkeyed chains allowed"
        line += ")"
        if self.external:
            line += f", {self.external} external heads matched"
        if self.older:
            line += f"; {self.older:,} older records predate the chains and are not covered"
        return line


@dataclass
class _Walk:
    """What walking one chain found."""

    chain: str
    n: int = 0
    last_hash: str | None = None
    at: dict[str, tuple[int, int]] = field(default_factory=dict)  # hash -> (index, seq)
    hash_at: dict[int, tuple[str | None, int]] = field(default_factory=dict)  # wanted index
    problems: list[Problem] = field(default_factory=list)
    broken: int = 0
    links: list[tuple[int, Any, int | None]] = field(default_factory=list)

    def add(self, row: Any, what: str) -> None:
        self.broken += 1
        if self.broken <= MAX_PER_CHAIN:
            self.problems.append(Problem(what, self.chain, row.seq, row.run_id, row.position))


_COLUMNS = [c for c in AuditRow.__table__.columns]


def _walk(conn: Connection, chain: str, key: AuditKey | None, wanted: set[int],
          bare: set[str], found: set[str]) -> _Walk:
    w = _Walk(chain)
    prev, prev_seq = GENESIS, None
    t = AuditRow.__table__
    rows = conn.execution_options(yield_per=1000).execute(
        select(*_COLUMNS).where(t.c.chain == chain).order_by(t.c.seq))
    for i, row in enumerate(rows):
        record = row._mapping
        if row.hash is None:
            w.add(row, "it has no hash (written outside the writer, or its hash erased)")
        elif record_hash(record, key) != row.hash:
            w.add(row, "its hash does not match its fields: it was changed after it was "
                  "written, or forged" + ("" if key is None else " without the key"))
        if row.prev_hash != prev:
            w.links.append((i, row, prev_seq))
        if row.hash is not None:
            w.at.setdefault(row.hash, (i, row.seq))
            if row.hash in bare:
                found.add(row.hash)
        if i in wanted:
            w.hash_at[i] = (row.hash, row.seq)
        prev, prev_seq = row.hash, row.seq
        w.n = i + 1
    w.last_hash = prev if w.n else None
    for i, row, before in w.links:  # now that every hash of the chain is known
        j = w.at.get(row.prev_hash) if row.prev_hash else None
        if j is not None and j[0] > i:
            w.add(row, f"out of order: its predecessor is seq {j[1]}, which comes after it "
                  "(records were reordered)")
        elif j is not None:
            w.add(row, f"out of order: its predecessor is seq {j[1]}, not seq {before} "
                  "before it (a record was inserted, or records reordered)")
        elif i == 0:
            w.add(row, "the chain does not start here: its predecessor is not in the chain "
                  "(the records before it were deleted)")
        elif row.prev_hash == GENESIS:
            w.add(row, "it starts the chain again (a forged record, or records reordered)")
        else:
            w.add(row, f"its predecessor is missing: the record before it (after seq {before}) "
                  "was deleted, or its hash changed")
    if w.broken > MAX_PER_CHAIN:
        w.problems.append(Problem(f"{w.broken - MAX_PER_CHAIN:,} more broken records not "
                                  "listed", chain))
    return w


def _check_head(w: _Walk, head: Any | None) -> list[Problem]:
    """The chain against its head in audit_heads."""
    c = w.chain
    if head is None:
        return [Problem(f"its {w.n:,} records have no head in audit_heads (the head was "
                        "deleted, or the records inserted outside the writer)", c)] if w.n else []
    if not w.n:
        return [Problem(f"all its {head.length:,} records are gone (deleted); audit_heads "
                        "still holds its head", c)]
    if head.head_hash == w.last_hash and head.length == w.n:
        return []
    if head.head_hash in w.at:
        k, seq = w.at[head.head_hash]
        if k + 1 < w.n:
            return [Problem(f"{w.n - k - 1:,} records after its head in audit_heads (seq {seq}): "
                            "added after the writer's last write", c)]
        return [Problem(f"audit_heads says {head.length:,} records, the chain holds {w.n:,}: "
                        + ("records were deleted" if head.length > w.n else
                           "records were inserted"), c)]
    return [Problem(f"its head in audit_heads ({head.length:,} records, {head.head_hash[:16]}…) "
                    f"is not in the chain ({w.n:,} records): its last records were deleted or "
                    "changed", c)]


def _check_external(w: _Walk | None, head: AuditHead, db_head: Any | None) -> list[Problem]:
    """The chain against a head kept outside the database."""
    c, n = head.chain, head.length
    if w is None or not w.n:
        return [Problem(f"the external head says {n:,} records; none are left (the chain was "
                        "deleted)", c)]
    out = []
    if w.n < n:
        out.append(Problem(f"the external head says {n:,} records; the chain holds {w.n:,}: the "
                           f"last {n - w.n:,} of them were deleted (truncated)", c))
    else:
        got, seq = w.hash_at[n - 1]
        if got != head.head_hash:
            out.append(Problem(f"record {n:,} of the chain (seq {seq}) is not the external head "
                               f"({head.head_hash[:16]}…): the chain was rewritten", c))
    if head.keyed and db_head is not None and not db_head.keyed:
        out.append(Problem("the external head says keyed, audit_heads says unkeyed: the chain "
                           "was recomputed without the key", c))
    return out


def _chains(conn: Connection, run_id: str | None, heads: dict[str, Any],
            named: Iterable[str]) -> list[str]:
    t = AuditRow.__table__
    query = select(t.c.chain).where(t.c.chain.is_not(None)).distinct()
    chains = {c for (c,) in conn.execute(query)} | set(heads)
    if run_id is not None:
        of_run = {c for (c,) in conn.execute(query.where(t.c.run_id == run_id))}
        chains = {c for c in chains if run_of(c) == run_id} | of_run
    return sorted(chains | set(named))


def _unchained(conn: Connection, run_id: str | None) -> tuple[int, list[Problem]]:
    """(records older than every chain, problems for unchained records among chained ones)."""
    t = AuditRow.__table__
    first = conn.execute(select(func.min(t.c.seq)).where(t.c.chain.is_not(None))).scalar()
    where = [t.c.chain.is_(None)] + ([t.c.run_id == run_id] if run_id is not None else [])
    if first is None:
        return conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one(), []
    older = conn.execute(select(func.count()).select_from(t).where(*where, t.c.seq < first)
                         ).scalar_one()
    late = conn.execute(select(t.c.seq, t.c.run_id, t.c.position).where(*where, t.c.seq > first)
                        .order_by(t.c.seq).limit(MAX_PER_CHAIN)).all()
    return older, [Problem("it is in no chain (chain is NULL), after chained records: inserted "
                           "outside the writer, or taken out of its chain", None, s, r, p)
                   for s, r, p in late]


def verify(engine: Engine, key: AuditKey | None, *, run_id: str | None = None,
           heads: Sequence[AuditHead | str] = (), allow_unkeyed: bool = False) -> Verification:
    """Walk the chains (those of `run_id`, else all) and check them against audit_heads and
    `heads` (AuditHead, or a bare head hash to be found in one of them). Raises `StoreError`
    when a keyed chain is to be checked without a key."""
    external = [h for h in heads if isinstance(h, AuditHead)]
    bare = {h for h in heads if isinstance(h, str)}
    problems: list[Problem] = []
    found: set[str] = set()
    with engine.connect() as conn:
        ht = AuditHeadRow.__table__
        db_heads = {r.chain: r for r in conn.execute(select(ht))}
        chains = _chains(conn, run_id, db_heads, (h.chain for h in external))
        keyed = {c: bool(db_heads[c].keyed) if c in db_heads else key is not None
                 for c in chains}
        if key is None and any(keyed.values()):
            raise StoreError(f"{sum(keyed.values())} of the {len(chains)} audit chains are "
                             "keyed (HMAC): set DOCSTREAM_AUDIT_KEY or DOCSTREAM_AUDIT_KEY_FILE "
                             "to verify them")
        unkeyed = [c for c in chains if not keyed[c]] if key is not None else []
        if not allow_unkeyed:
            problems += [Problem("it is unkeyed (plain SHA-256) although a key is set: anyone "
                                 "with write access could have rewritten it (--allow-unkeyed "
                                 "accepts that)", c) for c in unkeyed]
        wanted: dict[str, set[int]] = {}
        for h in external:
            wanted.setdefault(h.chain, set()).add(h.length - 1)
        walks: dict[str, _Walk] = {}
        records = 0
        for c in chains:
            w = _walk(conn, c, key if keyed[c] else None, wanted.get(c, set()), bare, found)
            walks[c] = w
            records += w.n
            problems += w.problems + _check_head(w, db_heads.get(c))
        problems += [p for h in external
                     for p in _check_external(walks.get(h.chain), h, db_heads.get(h.chain))]
        problems += [Problem(f"the external head {h[:16]}… is in no chain: its record was "
                             "deleted, or the chain rewritten") for h in sorted(bare - found)]
        older, late = _unchained(conn, run_id)
        problems += late
    return Verification(
        records=records, chains=len(chains), keyed=key is not None,
        unkeyed_allowed=len(unkeyed) if allow_unkeyed else 0, older=older,
        external=len(external) + len(bare & found),
        problems=tuple(sorted(problems, key=lambda p: p.order)))


def current_heads(engine: Engine, run_id: str | None = None) -> list[Any]:
    """audit_heads rows (chain, head_hash, length, keyed, updated_at), of `run_id`'s chains
    or all."""
    t = AuditHeadRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.chain)).all()
    return [r for r in rows if run_id is None or run_of(r.chain) == run_id]
