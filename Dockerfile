# pgbars as a container image: `pgbars serve`, the long-running worker, by default;
# any other command by argument (docker run IMAGE work, IMAGE db upgrade, IMAGE status).
# Configuration comes from the environment (DATABASE_URL, POLYGON_API_KEY,
# TRADIER_TOKEN, ...) as everywhere else. compose.yaml and deploy/ run it.
# Dependencies at the versions constraints.txt pins (scripts/lock); see docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The package's sources only (.dockerignore lets nothing else in); pip builds the
# wheel from them and installs it with its locked dependencies, then they go.
WORKDIR /tmp/pgbars
COPY constraints.txt pyproject.toml README.md ./
COPY worker ./worker
COPY sql ./sql
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf /tmp/pgbars

# Never root: the worker needs no privilege, only the network and its environment.
# A numeric USER, so a runtime that insists on non-root (runAsNonRoot) can tell.
RUN groupadd --gid 10001 pgbars \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin pgbars
USER 10001:10001
WORKDIR /home/pgbars

# Exec form: pgbars is PID 1 and gets the stop signal itself. On SIGTERM `serve`
# stops claiming, releases the fetches in flight, lets writes under way commit and
# exits within 10 s (`work` releases its leases and exits): a stop timeout of 15 s
# or more never kills it mid-write.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pgbars"]
CMD ["serve"]
