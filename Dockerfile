# syntax=docker/dockerfile:1
# The Jieshui application image: the `jieshui` command (collector, API, simulators, account tool).
# docker-compose.yml builds two targets from it:
#   app  the command and its runtime dependencies; collector, simulators, mqtt-accounts, backfill
#   api  app plus Chromium and Noto CJK fonts, which print the evaluation reports as PDF (verification/report.py)
# No test or development dependencies; runs as the unprivileged user jieshui (uid 10001).

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a wheel of the project, installed with its dependencies into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build
# The package index pip installs from (a mirror where PyPI is slow, e.g. in mainland China).
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (pyproject's package list, and the README it names): never .env,
# tests or local data, whatever .dockerignore says.
COPY pyproject.toml README.md ./
COPY jieshui/ jieshui/
COPY devices/ devices/
COPY collector/ collector/
COPY store/ store/
COPY simulators/ simulators/
COPY verification/ verification/
COPY api/ api/
COPY programme/ programme/
COPY grafana/ grafana/
COPY evidence/ evidence/
RUN python -m venv /opt/jieshui \
    && /opt/jieshui/bin/pip install --upgrade pip \
    && /opt/jieshui/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/jieshui/bin/pip install /wheels/jieshui-*.whl \
    && /opt/jieshui/bin/jieshui --version

# --- app: the runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/jieshui/bin:${PATH} \
    JIESHUI_SITE=/site/site.yaml \
    JIESHUI_VAR_DIR=/var/lib/jieshui
# The data directories exist in the image owned by jieshui, so a named volume mounted on one starts
# out owned by jieshui too (Docker copies the mount point's ownership into a new volume).
RUN groupadd --system --gid 10001 jieshui \
    && useradd --system --uid 10001 --gid jieshui --home-dir /var/lib/jieshui --no-create-home \
        --shell /usr/sbin/nologin jieshui \
    && install -d -o jieshui -g jieshui -m 0750 \
        /var/lib/jieshui /var/lib/jieshui/collector /var/lib/jieshui/api
COPY --from=build /opt/jieshui /opt/jieshui
# The example inventories; the district is the default site (docker-compose bind-mounts the operator's
# own over /site/site.yaml, see docs/deploy.md).
COPY examples/ /usr/share/jieshui/examples/
COPY examples/district.yaml /site/site.yaml
# Relative paths the command defaults to (var/...) land in the writable data directory.
WORKDIR /var/lib/jieshui
USER 10001:10001
ENTRYPOINT ["jieshui"]
CMD ["--help"]

# --- api: app plus the PDF printer -------------------------------------------------------------------
FROM app AS api
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
