"""`docstream db roles|upgrade`: least-privilege roles and migrations for the store.

    docstream db roles --db ADMIN_URL [--prefix docstream] [--password-env writer=VAR ...]
    docstream db upgrade --db OWNER_URL [--prefix docstream]

`roles` (PostgreSQL, as an administrator) creates or realigns PREFIX_owner, PREFIX_writer,
PREFIX_reader and PREFIX_reviewer and their grants (store/roles.py); run it again whenever
you like, it is idempotent; it prints each role's URL and the command that uses it (the
reviewer's: `docstream serve --review-db`, or $DOCSTREAM_REVIEWER_DB). `upgrade` runs the
migrations as the owner and re-applies the grants to what they created; jobs connected as
the writer then find the schema current and migrate nothing.

Reviewers (rows of the `reviewers` table) are added and revoked by the owner: run
`docstream reviewers add` with the owner's (or an administrator's) URL.
"""

from __future__ import annotations

import argparse
import os

from sqlalchemy import Engine

from docstream.errors import ConfigError
from docstream.store.engine import check_reachable, default_url, make_engine
from docstream.store.masking import mask_url
from docstream.store.roles import (
    DEFAULT_PREFIX,
    ROLE_KINDS,
    RoleNames,
    effective_privileges,
    ensure_roles,
    role_url,
    upgrade_as_owner,
)

_USE = {"owner": "db upgrade --db", "writer": "run --sink", "reader": "query --db",
        "reviewer": "serve --review-db"}
# where the commands also take the role's URL from (instead of the flag)
_ENV = {"reader": ("DOCSTREAM_READER_DB", "docstream query"),
        "reviewer": ("DOCSTREAM_REVIEWER_DB", "docstream serve --review-db")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="set up least-privilege roles, run migrations")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser("roles", help="create the owner, writer, reader and reviewer roles "
                           "and their grants (PostgreSQL; idempotent; run as an administrator)")
    u = actions.add_parser("upgrade", help="run the migrations as the schema owner, then "
                           "re-apply the writer's, reader's and reviewer's grants")
    for q in (r, u):
        q.add_argument("--db", metavar="URL", help="database URL (default $DOCSTREAM_DB or "
                       "sqlite:///docstream.db)")
        q.add_argument("--prefix", default=DEFAULT_PREFIX, help="role names are PREFIX_owner, "
                       f"PREFIX_writer, PREFIX_reader, PREFIX_reviewer (default {DEFAULT_PREFIX})")
    r.add_argument("--password-env", action="extend", nargs="+", default=[],
                   metavar="KIND=VAR", help="set the password of role KIND (owner, writer, "
                   "reader, reviewer) from environment variable VAR; roles not named keep theirs")
    p.set_defaults(func=run)


def password_variables(specs: list[str]) -> dict[str, str]:
    """{"writer": "DOCSTREAM_WRITER_PASSWORD"} from ["writer=DOCSTREAM_WRITER_PASSWORD"]."""
    out: dict[str, str] = {}
    for spec in specs:
        kind, sep, var = spec.partition("=")
        if not sep or kind not in ROLE_KINDS or not var:
            raise ConfigError(f"--password-env takes KIND=VAR with KIND one of "
                              f"{', '.join(ROLE_KINDS)}, e.g. writer=DOCSTREAM_WRITER_PASSWORD; "
                              f"got {spec!r}")
        if kind in out:
            raise ConfigError(f"--password-env names the {kind}'s password twice")
        out[kind] = var
    return out


def passwords_from_env(variables: dict[str, str]) -> dict[str, str]:
    """Role kind -> password, read from the named environment variables. Messages name the
    variable, never its value."""
    out: dict[str, str] = {}
    for kind, var in variables.items():
        value = os.environ.get(var)
        if not value:
            raise ConfigError(f"environment variable {var} (the {kind}'s password) is not set "
                              "or empty")
        out[kind] = value
    return out


def run(args: argparse.Namespace) -> int:
    names = RoleNames(args.prefix)
    variables = password_variables(getattr(args, "password_env", []))
    passwords = passwords_from_env(variables)  # before connecting: fail fast
    url = args.db or default_url()
    engine = make_engine(url)
    try:
        check_reachable(engine)
        if args.action == "roles":
            _roles(engine, url, names, passwords, variables)
        else:
            _upgrade(engine, names)
    finally:
        engine.dispose()
    return 0


def _roles(engine: Engine, url: str, names: RoleNames, passwords: dict[str, str],
           variables: dict[str, str]) -> None:
    report = ensure_roles(engine, names, passwords)
    print(f"roles at {mask_url(engine.url)}, schema {report.schema}:")
    for kind in ROLE_KINDS:
        role = names.of(kind)
        state = "created" if role in report.created else "exists"
        if role in report.passwords_set:
            state += f", password from ${variables[kind]}"
        print(f"  {role:<28} {state:<40} docstream {_USE[kind]} "
              f"{mask_url(role_url(url, role))}")
    for kind, (var, command) in _ENV.items():
        print(f"  or in the environment: {var}={mask_url(role_url(url, names.of(kind)))} "
              f"({command})")
    if report.public_create_revoked:
        print(f"  revoked CREATE on schema {report.schema} from PUBLIC")
    if report.reowned:
        print(f"  {names.owner} now owns: {', '.join(report.reowned)}")
    with engine.connect() as conn:
        held = effective_privileges(conn, names)
    if held:
        print(f"  {'relation':<22} {'writer':<24} {'reader':<24} reviewer")
        for relation, kinds in held.items():
            print(f"  {relation:<22} {' '.join(kinds['writer']) or '-':<24} "
                  f"{' '.join(kinds['reader']) or '-':<24} {' '.join(kinds['reviewer']) or '-'}")
    if report.missing:
        print(f"  not migrated yet ({', '.join(report.missing)}): `docstream db upgrade --db "
              f"{mask_url(role_url(url, names.owner))}` creates them and grants the same")


def _upgrade(engine: Engine, names: RoleNames) -> None:
    report = upgrade_as_owner(engine, names)
    where = mask_url(engine.url)
    if report.before == report.after:
        line = f"store at {where}: already at revision {report.after}"
    else:
        line = (f"store at {where}: migrated {report.before or 'empty'} -> {report.after}"
                + (f" as {report.as_role}" if report.as_role else ""))
    if report.granted:
        line += (f"; grants re-applied for {names.writer}, {names.reader} and "
                 f"{names.reviewer}")
    print(line)
    if report.note:
        print(f"  {report.note}")
