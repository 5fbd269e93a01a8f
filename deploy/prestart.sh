#!/usr/bin/env bash
# Before the API starts: wait for the database, then apply the migrations (migrations first, always).
#   deploy/prestart.sh              # REVERIE_DATABASE_URL from the environment (or .env)
#   DB_WAIT_TIMEOUT_S=120 deploy/prestart.sh
# docker-compose.yml's one-shot `migrate` service runs it; elsewhere: a Kubernetes init container, or a
# systemd ExecStartPre= of the API unit.
set -euo pipefail
python=${PYTHON:-python}

"$python" - "${DB_WAIT_TIMEOUT_S:-60}" <<'PY'
import sys
import time

from sqlalchemy import text

from service.config import Settings
from service.store.db import make_engine

url = Settings().resolved_database_url
engine = make_engine(url)
deadline = time.monotonic() + float(sys.argv[1])
while True:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        break
    except Exception as exc:  # refused, not accepting connections yet, DNS not up yet
        if time.monotonic() > deadline:
            sys.exit(f"prestart: database {url.split('@')[-1]} not reachable after {sys.argv[1]} s: {exc}")
        time.sleep(1)
engine.dispose()
print(f"prestart: database {url.split('@')[-1]} is up", flush=True)
PY

exec reverie db upgrade "$@"
