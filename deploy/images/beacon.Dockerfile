# Every Beacon service, in one image: the services share nearly all of their dependencies (README, Deploy:
# measured), so one image is one build, one scan and one pull per node instead of four almost equal ones.
# `docker run beacon:0.1.0 recorder` (or runner --region R, reader, submitter-api, migrate, …).
#
# BASE: the public python:3.11-slim-bookworm for real users; `make image` points it at a Debian root file
# system made locally (deploy/images/build.sh), as no image registry is reachable here.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG UV_VERSION=0.13.9
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/beacon
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
WORKDIR /src
# The lock and the members only: no tests, no bench, no state.
COPY pyproject.toml uv.lock ./
COPY schemas schemas
COPY migrations migrations
COPY infra infra
COPY providers providers
COPY services services
COPY deploy deploy
COPY cli cli
# Exactly what uv.lock pins (it fails if the lock is stale), the members built as wheels, no dev group.
RUN /opt/uv/bin/uv sync --locked --no-dev --no-editable --all-packages --python python3 --no-cache

FROM ${BASE}
RUN groupadd --system --gid 10001 beacon \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/beacon --no-create-home --shell /usr/sbin/nologin beacon \
 && mkdir -p /var/lib/beacon && chown 10001:10001 /var/lib/beacon && chmod 700 /var/lib/beacon
COPY --from=build /opt/beacon /opt/beacon
# BEACON_STATE_DIR is the one writable place a service needs (mount a volume or tmpfs there and at /tmp,
# and the root file system can be read-only). Logs as JSON lines on stdout.
ENV PATH=/opt/beacon/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    BEACON_STATE_DIR=/var/lib/beacon BEACON_LOG_FORMAT=json \
    BEACON_SECRETS_DIR=/run/secrets/beacon BEACON_KEYS_DIR=/run/secrets/beacon-keys
USER 10001:10001
WORKDIR /var/lib/beacon
# The CLI stops cleanly on SIGTERM: consumers leave their groups, nothing uncommitted is lost.
STOPSIGNAL SIGTERM
# A service with an HTTP port says where (BEACON_HEALTH_PORT: the reader's 8080, the recorder's 8082, the
# submitter's 8081); a runner has none, and counts as healthy while its process runs.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, sys, urllib.request as u; p = os.environ.get('BEACON_HEALTH_PORT'); sys.exit(0 if not p else u.urlopen(f'http://127.0.0.1:{p}/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["beacon"]
CMD ["--help"]
