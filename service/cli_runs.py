"""`reverie runs list | show ID | cancel ID` (with `--json`): sleep runs from the shell, as the API shows
them (a run whose worker went silent is `stalled`)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid


def run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id (a UUID, as `reverie runs list` prints)") from None


def _line(run) -> str:
    progress = run.progress
    step = f"{progress.step}/{progress.total}" if progress.total else "-"
    why = run.note or (run.error.splitlines()[0] if run.error else "")
    return f"{run.id}\t{run.namespace}\t{run.state}\t{run.trigger}\t{progress.phase or '-'}\t{step}\t{run.created_at:%Y-%m-%d %H:%M:%S}\t{why}"


def _show(run) -> str:
    fields = {
        "run": run.id, "namespace": run.namespace, "state": run.state, "trigger": run.trigger,
        "phase": run.progress.phase or "-", "step": f"{run.progress.step}/{run.progress.total or '?'}",
        "worker": f"{run.lease_owner} (epoch {run.epoch})" if run.lease_owner else "-",
        "created": run.created_at, "started": run.started_at or "-", "finished": run.finished_at or "-",
        "note": run.note or "-", "error": run.error or "-",
    }
    return "\n".join(f"{name}:\t{value}" for name, value in fields.items())


def cmd_runs(args: argparse.Namespace, sessions, lease_s: float) -> int:
    from service.api.schemas import RunOut
    from service.store import runs as run_store
    from service.store import workers as worker_store

    with sessions() as session:
        if args.runs_command == "cancel":
            try:
                run_store.cancel_run(session=session, run_id=args.run_id)
            except (LookupError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        liveness = worker_store.liveness(session=session, lease_s=lease_s)
        if args.runs_command == "list":
            runs = [RunOut.of(r, liveness) for r in run_store.list_runs(session=session, namespace=args.namespace, limit=args.limit)]
        else:
            found = run_store.get_run(session=session, run_id=args.run_id)
            if found is None:
                print(f"error: no sleep run {args.run_id}", file=sys.stderr)
                return 1
            runs = [RunOut.of(found, liveness)]
    if args.json:
        payload = [r.model_dump(mode="json") for r in runs]
        print(json.dumps(payload if args.runs_command == "list" else payload[0], indent=2))
    elif args.runs_command == "list":
        print("\n".join(_line(r) for r in runs) if runs else "no sleep runs")
    elif args.runs_command == "cancel":
        print(f"run {runs[0].id} cancelled; its worker stops at its next progress point and publishes nothing")
    else:
        print(_show(runs[0]))
    return 0


def add_parser(commands, func) -> None:
    """`reverie runs ...` under `commands`; `func(args)` runs them."""
    runs = commands.add_parser("runs", help="sleep runs").add_subparsers(dest="runs_command", required=True)
    listing = runs.add_parser("list", help="recent sleep runs, newest first")
    listing.add_argument("--namespace", help="only this namespace's runs")
    listing.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    show = runs.add_parser("show", help="one run: state, progress, worker, error")
    show.add_argument("run_id", type=run_id, metavar="ID", help="the run's id")
    cancel = runs.add_parser("cancel", help="cancel a queued or running run (its episodes stay in the backlog)")
    cancel.add_argument("run_id", type=run_id, metavar="ID", help="the run's id")
    for sub in (listing, show, cancel):
        sub.add_argument("--json", action="store_true", help="print JSON, as the API returns it")
        sub.add_argument("--database-url", help="override REVERIE_DATABASE_URL")
        sub.set_defaults(func=func)
