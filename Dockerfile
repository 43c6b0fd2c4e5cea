# mm-daemon container image.
#
#   docker build -t mm-daemon .            (or: buildah bud --format docker -t mm-daemon .)
#   docker run --rm -p 9464:9464 mm-daemon
#
# BASE_IMAGE: any Debian-like image with python3 (>= 3.11) and its venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: wheels for the project and every dependency ---------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/sh", "-eu", "-c"]
# A C compiler and the Python headers build the compiled hot paths (market-data frames, order
# signing); they stay in this stage. Where the base image already has them, nothing is installed.
# hadolint ignore=DL3008
RUN include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"; \
    if ! command -v cc >/dev/null || [ ! -f "$include/Python.h" ]; then \
        apt-get update -qq; \
        apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev >/dev/null; \
        rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
RUN python3 -m venv /opt/build
COPY pyproject.toml setup.py README.md ./
COPY mm_daemon ./mm_daemon
# The pip cache lives in a build cache mount: rebuilds after a source change download nothing.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/build/bin/pip wheel --wheel-dir /wheels .

# ---- runtime: the prebuilt wheels only, no compilers, no sources --------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/mm-daemon/bin:$PATH \
    HOME=/var/lib/mm-daemon
COPY --from=build /wheels /tmp/wheels
RUN python3 -m venv /opt/mm-daemon \
    && /opt/mm-daemon/bin/pip install --no-index --find-links=/tmp/wheels mm-daemon \
    && /opt/mm-daemon/bin/pip uninstall --yes pip \
    && rm -rf /tmp/wheels \
    && mkdir -p /var/lib/mm-daemon /etc/mm-daemon \
    && chown 10001:10001 /var/lib/mm-daemon
COPY deploy/config/container.yaml /etc/mm-daemon/config.yaml

# The only place the daemon writes (state, summaries); everything else stays read-only.
VOLUME ["/var/lib/mm-daemon"]
WORKDIR /var/lib/mm-daemon
USER 10001:10001
EXPOSE 9464

# Healthy while /health answers: the event loop runs (liveness; /ready is the readiness the
# orchestrator routes on). Port from MMD_METRICS__PORT when it is overridden.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MMD_METRICS__PORT', '9464') + '/health', timeout=2).read()"]

# Exec form: the daemon is PID 1 and receives SIGTERM itself (it cancels open orders, then exits 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mm-daemon"]
CMD ["run", "--config", "/etc/mm-daemon/config.yaml"]
