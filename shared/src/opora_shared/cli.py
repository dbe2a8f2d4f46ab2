"""``opora``: the operator CLI. ``opora run`` is what ``make run`` starts.

Subcommands: run, provision, docs, parse-email, sla, contracts (validate, push), classify.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from opora_shared import subjects
from opora_shared.contract_store import Pushed, push
from opora_shared.contracts import ContractBook
from opora_shared.errors import OporaError
from opora_shared.events import Event
from opora_shared.nats.server import NatsServer
from opora_shared.nats.streams import StorePolicy, bucket_configs, provision
from opora_shared.settings import OporaSettings
from opora_shared.stack import Stack
from opora_shared.team import load_team
from opora_shared.tokens import ensure_admin_token


async def _replicas_in_use(js: JetStreamContext) -> int | None:
    """How many copies the events stream has, or None before the first provisioning."""
    try:
        info = await js.stream_info(subjects.EVENTS_STREAM)
    except NotFoundError:
        return None
    return info.config.num_replicas


async def _scale_buckets(js: JetStreamContext, replicas: int) -> None:
    """Give existing KV and object buckets ``replicas`` copies (creating them cannot change it)."""
    names = [f"KV_{bucket.bucket}" for bucket in bucket_configs(StorePolicy())]
    for name in [*names, f"OBJ_{subjects.ATTACHMENTS_BUCKET}"]:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            continue
        if info.config.num_replicas != replicas:
            await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))


async def _provision(settings: OporaSettings, *, replicas: int | None = None) -> tuple[str, bool]:
    """Provision with ``replicas`` copies (None: as many as the streams have, 1 when new)."""
    nc = await nats.connect(
        settings.nats_servers, connect_timeout=2, max_reconnect_attempts=10, reconnect_time_wait=0.5
    )
    try:
        js = nc.jetstream()
        replicas = replicas or await _replicas_in_use(js) or 1
        await _scale_buckets(js, replicas)
        await provision(js, StorePolicy(replicas=replicas))
        return await ensure_admin_token(js, settings.admin_token_file)
    finally:
        await nc.close()


def cmd_provision(args: argparse.Namespace) -> int:
    """Create or update streams and buckets (``--replicas 3`` on a cluster), and the admin token."""
    settings = OporaSettings()
    token, created = asyncio.run(_provision(settings, replicas=args.replicas))
    print(f"streams and buckets ready on {settings.nats_url}")
    if created:
        print(f"admin token (also in {settings.admin_token_file}): {token}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start NATS (unless OPORA_NATS_URL names one), provision, run the four services."""
    settings = OporaSettings()
    var = settings.var_dir.resolve()
    for sub in ("nats", "outbox", "log"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["OPORA_VAR_DIR"] = str(var)
    env.setdefault("OPORA_CONTRACTS_DIR", str(settings.contracts_dir.resolve()))
    env.setdefault("OPORA_TEAM_FILE", str(settings.team_file.resolve()))
    http = f"http://{env.get('OPORA_HTTP_HOST', '127.0.0.1')}:{env.get('OPORA_HTTP_PORT', '8080')}"
    server: NatsServer | None = None
    stack: Stack | None = None
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Installed first: a Ctrl-C at any moment goes through the orderly stop below.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "OPORA_NATS_URL" not in os.environ:
            server = NatsServer(
                store_dir=var / "nats",
                config=Path(args.nats_config).resolve(),
                port=args.nats_port,
                monitor_port=args.nats_monitor_port,
                log_file=var / "log" / "nats.log",
            )
            server.start()
            env["OPORA_NATS_URL"] = server.url
        token, created = asyncio.run(_provision(OporaSettings(nats_url=env["OPORA_NATS_URL"])))
        follower = ContractsFollower(
            env["OPORA_NATS_URL"],
            Path(env["OPORA_CONTRACTS_DIR"]),
            Path(env["OPORA_TEAM_FILE"]),
        )
        follower.poll(first=True)
        stack = Stack(env=env)
        stack.start()
        stack.wait_http_ready(f"{http}/readyz", timeout=60, give_up=lambda: stopping)
        if not stopping:
            _banner(env["OPORA_NATS_URL"], http, var, token if created else None)
        next_poll = time.monotonic() + 1.0
        while not stopping:
            if dead := stack.dead():
                print(f"opora: service(s) exited: {', '.join(dead)}; stopping", file=sys.stderr)
                return 1
            if time.monotonic() >= next_poll:
                follower.poll()
                next_poll = time.monotonic() + 1.0
            time.sleep(0.3)
        return 0
    finally:
        print("opora: stopping services...", file=sys.stderr, flush=True)
        if stack is not None:
            stack.stop()
        if server is not None:
            server.stop()
        print("opora: stopped", file=sys.stderr, flush=True)


def _banner(nats_url: str, http: str, var: Path, new_token: str | None) -> None:
    lines = [
        "",
        "Opora is running (Ctrl-C stops everything):",
        f"  NATS JetStream      {nats_url}   (data in {var / 'nats'})",
        f"  intake HTTP API     {http}   (OpenAPI at {http}/docs)",
        "  metrics             intake :9101, classifier :9102, sla-timer :9103, notifier :9104",
        f"  outbox (client mail) {var / 'outbox'}",
        f"  logs                {var / 'log'}",
    ]
    if new_token:
        lines.append(f"  admin token (new; also in {var / 'admin.token'}, mode 0600):")
        lines.append(f"    {new_token}")
    else:
        lines.append(f"  admin token         in {var / 'admin.token'}")
    lines += [
        "",
        f"Try: curl -s -X POST {http}/v1/tickets -H 'content-type: application/json' \\",
        '       -d \'{"from":"anna@romashka.ru","subject":"Принтер не печатает",'
        '"body":"Замяло бумагу"}\'',
        "",
    ]
    print("\n".join(lines), flush=True)


def cmd_contracts_validate(args: argparse.Namespace) -> int:
    """Validate every contract file in a directory, and the team file."""
    book = ContractBook.from_dir(Path(args.dir))
    for contract in book:
        print(json.dumps({"tenant": contract.tenant, "revision": contract.revision, "ok": True}))
    if args.team:
        team = load_team(Path(args.team))
        print(json.dumps({"team": args.team, "revision": team.revision, "ok": True}))
    return 0


@contextlib.asynccontextmanager
async def _jetstream(settings: OporaSettings) -> AsyncIterator[JetStreamContext]:
    """A short-lived connection for one CLI command; closed whatever happens."""
    nc = await nats.connect(settings.nats_servers, connect_timeout=2, max_reconnect_attempts=2)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def _push(settings: OporaSettings, directory: Path, team: Path | None) -> list[Pushed]:
    async with _jetstream(settings) as js:
        kv = await js.key_value(subjects.CONTRACTS_BUCKET)
        return await push(kv, directory, team)


def cmd_contracts_push(args: argparse.Namespace) -> int:
    """Validate the contracts and team file, then put the changed ones into the KV bucket."""
    team = Path(args.team) if args.team else None
    for item in asyncio.run(_push(OporaSettings(), Path(args.dir), team)):
        print(json.dumps({"key": item.key, "revision": item.revision, "changed": item.changed}))
    return 0


class ContractsFollower:
    """``opora run`` pushes contract and team files to the bucket whenever they change."""

    def __init__(self, nats_url: str, directory: Path, team: Path | None) -> None:
        self.settings = OporaSettings(nats_url=nats_url)
        self.directory = directory
        self.team = team
        self._seen: dict[Path, float] = {}

    def _stamp(self) -> dict[Path, float]:
        files = [*self.directory.glob("*.y*ml")] + ([self.team] if self.team else [])
        return {path: path.stat().st_mtime for path in files if path.is_file()}

    def poll(self, *, first: bool = False) -> None:
        """Push when a file was added, changed or removed; report a bad file, keep running."""
        stamp = self._stamp()
        if stamp == self._seen and not first:
            return
        self._seen = stamp
        try:
            changed = [
                p for p in asyncio.run(_push(self.settings, self.directory, self.team)) if p.changed
            ]
        except OporaError as exc:
            print(f"opora: contracts not pushed, the running ones stay: {exc}", file=sys.stderr)
            return
        for item in changed:
            print(f"opora: {item.key} revision {item.revision} pushed", flush=True)


def cmd_classify(args: argparse.Namespace) -> int:
    """Print the classification of one ticket or of each line of a batch, or evaluate."""
    from opora_classifier import train
    from opora_classifier.cli import Classifier, run_batch
    from opora_classifier.settings import MODEL_DIR

    model_dir = Path(args.model_dir) if args.model_dir else MODEL_DIR
    if args.evaluate:
        train.main(["--evaluate", "--model-dir", str(model_dir), "--contracts", args.contracts])
        return 0
    classifier = Classifier(model_dir, Path(args.contracts))
    if args.batch:
        if args.batch == "-":
            return run_batch(classifier, sys.stdin, sys.stdout)
        with Path(args.batch).open(encoding="utf-8") as source:
            return run_batch(classifier, source, sys.stdout)
    if not args.subject and not args.body:
        print(
            "opora: give --subject and/or --body (or --batch FILE, or --evaluate)", file=sys.stderr
        )
        return 2
    if not args.tenant and not args.sender:
        print("opora: give --tenant or --from", file=sys.stderr)
        return 2
    try:
        result = classifier.classify(
            sender=args.sender, subject=args.subject, body=args.body, tenant=args.tenant
        )
    except ValueError as exc:
        print(f"opora: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


async def _report_events(settings: OporaSettings, tenant: str, since: datetime) -> list[Event]:
    from opora_shared.reports.read import tenant_events

    async with _jetstream(settings) as js:
        return await tenant_events(js, tenant, since)


def cmd_report(args: argparse.Namespace) -> int:
    """Build a tenant's monthly report from the event history: HTML (or JSON) to a file."""
    from opora_shared.reports import build_report, month_bounds, render_html

    settings = OporaSettings()
    contract = ContractBook.from_dir(Path(args.contracts)).get(args.tenant)
    if contract is None:
        print(f"opora: no contract for tenant {args.tenant!r}", file=sys.stderr)
        return 2
    try:
        start, _ = month_bounds(args.month, contract.calendar.timezone)
    except ValueError as exc:
        print(f"opora: {exc}", file=sys.stderr)
        return 2
    events = asyncio.run(_report_events(settings, contract.tenant, start))
    report = build_report(contract, args.month, events, now=datetime.now(UTC))
    suffix = "json" if args.json else "html"
    out = Path(
        args.out or settings.var_dir / "reports" / f"{contract.tenant}-{args.month}.{suffix}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.json:
        out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    else:
        out.write_text(render_html(report), encoding="utf-8")
    print(json.dumps({"report": str(out), "tickets": report.tickets, "events_read": len(events)}))
    return 0


async def _ticket_events(settings: OporaSettings, ticket_id: str, tenant: str) -> list[Event]:
    from opora_shared.nats.history import ticket_events

    async with _jetstream(settings) as js:
        return await ticket_events(js, ticket_id, tenant=tenant)


def cmd_audit(args: argparse.Namespace) -> int:
    """Print a ticket's audit trail: every event, its actor and what it said."""
    from opora_shared.audit import trail

    if not args.ticket.isdigit():
        print(f"opora: {args.ticket!r} is not a ticket number", file=sys.stderr)
        return 2
    lines = trail(asyncio.run(_ticket_events(OporaSettings(), args.ticket, args.tenant)))
    if not lines:
        print(f"opora: no events for ticket {args.ticket}", file=sys.stderr)
        return 2
    for line in lines:
        if args.json:
            print(json.dumps(line.as_dict(), ensure_ascii=False))
        else:
            at = line.at.isoformat(timespec="seconds")
            print(f"{at}  {line.type:22} {line.actor:34} {line.summary}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) the AsyncAPI and OpenAPI documents under docs/."""
    from opora_shared.docs import generate

    stale = generate(Path(args.out), check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


def cmd_parse_email(args: argparse.Namespace) -> int:
    """Print one JSON object per mail file (an ``error`` object for a file it cannot read)."""
    from opora_intake.parsing.cli import parse_files

    return parse_files(list(args.files), sys.stdout)


def cmd_sla_deadlines(args: argparse.Namespace) -> int:
    """Print a ticket's deadlines under a tenant's contract, as JSON."""

    from opora_shared.vocabulary import Priority
    from opora_sla_timer.deadlines import deadlines

    contract = ContractBook.from_dir(Path(args.contracts)).get(args.tenant)
    if contract is None:
        print(f"opora: no contract for tenant {args.tenant!r}", file=sys.stderr)
        return 2
    received = datetime.fromisoformat(args.received)
    if received.tzinfo is None:
        print(
            "opora: --received needs a UTC offset, e.g. 2026-11-27T17:30:00+03:00", file=sys.stderr
        )
        return 2
    due = deadlines(contract, Priority(args.priority), received)
    zone = ZoneInfo(contract.calendar.timezone)
    print(
        json.dumps(
            {
                "tenant": contract.tenant,
                "priority": args.priority,
                "received": received.isoformat(),
                "first_response_due": due.first_response_due.astimezone(zone).isoformat(),
                "resolution_due": due.resolution_due.astimezone(zone).isoformat(),
                "timezone": contract.calendar.timezone,
            },
            ensure_ascii=False,
        )
    )
    return 0


async def _explain(settings: OporaSettings, ticket_id: str) -> dict[str, object]:
    from opora_shared.nats.history import ticket_events
    from opora_sla_timer.adapters.state_kv import SlaStateStore

    async with _jetstream(settings) as js:
        state, _ = await SlaStateStore(js).load(ticket_id)
        events = [
            e
            for e in await ticket_events(js, ticket_id)
            if e.family == "sla" or e.type == "ticket.updated"
        ]
    return {
        "ticket_id": ticket_id,
        "clocks": state.model_dump(mode="json") if state else None,
        "events": [e.model_dump(mode="json") for e in events],
    }


def cmd_sla_explain(args: argparse.Namespace) -> int:
    """Show a ticket's clocks (deadlines, pauses, what fired) and its SLA history."""
    report = asyncio.run(_explain(OporaSettings(), args.ticket))
    if report["clocks"] is None and not report["events"]:
        print(f"opora: no SLA clocks for ticket {args.ticket}", file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opora``."""
    parser = argparse.ArgumentParser(prog="opora", description="Opora's operator CLI")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start NATS and the four services (make run)")
    run.add_argument("--nats-config", default="deploy/nats/nats-server.conf")
    run.add_argument("--nats-port", type=int, default=4222, help="when it starts its own NATS")
    run.add_argument("--nats-monitor-port", type=int, default=8222)
    run.set_defaults(func=cmd_run)
    prov = sub.add_parser("provision", help="create or update streams, buckets, admin token")
    prov.add_argument(
        "--replicas",
        type=int,
        choices=[1, 3, 5],
        help="copies of every stream and bucket: 3 on a NATS cluster of 3 or more "
        "(default: as many as the streams have, 1 when new)",
    )
    prov.set_defaults(func=cmd_provision)
    docs = sub.add_parser("docs", help="generate docs/asyncapi and docs/openapi")
    docs.add_argument("--out", default="docs")
    docs.add_argument("--check", action="store_true", help="exit 1 when a document is stale")
    docs.set_defaults(func=cmd_docs)
    parse = sub.add_parser("parse-email", help="parse mail files, one JSON line each")
    parse.add_argument("files", nargs="+")
    parse.set_defaults(func=cmd_parse_email)
    sla = sub.add_parser("sla", help="SLA deadlines and clocks")
    sla_sub = sla.add_subparsers(dest="sla_command", required=True)
    dl = sla_sub.add_parser("deadlines", help="the deadlines of a ticket received at a moment")
    dl.add_argument("--tenant", required=True)
    dl.add_argument("--priority", required=True, choices=["P1", "P2", "P3", "P4"])
    dl.add_argument("--received", required=True, help="ISO 8601 with offset")
    dl.add_argument("--contracts", default="deploy/contracts")
    dl.set_defaults(func=cmd_sla_deadlines)
    explain = sla_sub.add_parser("explain", help="a ticket's clocks, pauses and SLA events")
    explain.add_argument("ticket")
    explain.set_defaults(func=cmd_sla_explain)
    contracts = sub.add_parser("contracts", help="tenant contracts")
    csub = contracts.add_subparsers(dest="contracts_command", required=True)
    validate = csub.add_parser("validate", help="validate every contract in a directory")
    validate.add_argument("dir", nargs="?", default="deploy/contracts")
    validate.add_argument("--team", default="deploy/team.yml", help="the team file ('' skips)")
    validate.set_defaults(func=cmd_contracts_validate)
    push_cmd = csub.add_parser(
        "push", help="validate, then put changed contracts and the team file into NATS KV"
    )
    push_cmd.add_argument("dir", nargs="?", default="deploy/contracts")
    push_cmd.add_argument("--team", default="deploy/team.yml", help="the team file ('' skips)")
    push_cmd.set_defaults(func=cmd_contracts_push)
    classify = sub.add_parser(
        "classify", help="classify tickets offline: one, a JSON-lines batch, or --evaluate"
    )
    mode = classify.add_mutually_exclusive_group()
    mode.add_argument("--batch", metavar="FILE.jsonl", help="one JSON object per line ('-': stdin)")
    mode.add_argument(
        "--evaluate", action="store_true", help="per-class scores on the held-out split"
    )
    classify.add_argument("--tenant", help="default: the tenant of --from")
    classify.add_argument("--from", dest="sender", default="", help="the sender's address")
    classify.add_argument("--subject", default="")
    classify.add_argument("--body", default="")
    classify.add_argument("--contracts", default="deploy/contracts")
    classify.add_argument("--model-dir", help="default: the shipped model")
    classify.set_defaults(func=cmd_classify)
    report = sub.add_parser("report", help="a tenant's monthly report from the event history")
    report.add_argument("--tenant", required=True)
    report.add_argument("--month", required=True, help="YYYY-MM, in the contract's timezone")
    report.add_argument("--out", help="default: var/reports/<tenant>-<month>.html")
    report.add_argument("--json", action="store_true", help="the figures as JSON instead")
    report.add_argument("--contracts", default="deploy/contracts")
    report.set_defaults(func=cmd_report)
    audit = sub.add_parser("audit", help="a ticket's audit trail: events, actors, no bodies")
    audit.add_argument("ticket")
    audit.add_argument("--tenant", default="*", help="only this tenant's events")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opora`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except OporaError as exc:
        print(f"opora: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
