# Troika's image: python:3.11-slim, the runtime lock installed with its hashes, run as a user of
# its own. Build: `docker build -t troika .`; run it with compose.yaml or see docs/operations.md.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/troika
COPY requirements.runtime.lock /tmp/requirements.runtime.lock
# The lock's --extra-index-url/--find-links lines name a build host's local mirrors; pip skips them here.
RUN /opt/troika/bin/pip install --require-hashes --no-deps -r /tmp/requirements.runtime.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY graphql_schema graphql_schema
COPY resolvers resolvers
COPY loaders loaders
COPY migrations migrations
# Troika itself: a wheel built in isolation (setuptools fetched for the build only), no dependencies.
RUN /opt/troika/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/troika/bin/pip install --no-deps /tmp/wheels/troika-*.whl \
    && rm -rf /src /tmp/wheels

FROM python:3.11-slim
RUN groupadd --system troika && useradd --system --gid troika --home-dir /var/lib/troika \
        --create-home --shell /usr/sbin/nologin troika
COPY --from=build /opt/troika /opt/troika
ENV PATH=/opt/troika/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TROIKA_VAR_DIR=/var/lib/troika
USER troika
WORKDIR /var/lib/troika
EXPOSE 8000
# SIGTERM drains (docs/operations.md#draining); give it longer than TROIKA_DRAIN_SECONDS.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["troika"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
