# The image of the suite's Python programs: the three services and the one-shot set-up
# (migrations, topics). The container's command says which one runs, for example
#   docker run --rm stockledger python -m services.ledger
# Everything is configured by environment variables (shared/settings.py); nothing secret is in
# the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The runtime dependencies of pyproject.toml (not the dev extras), pinned by requirements.lock, in
# a layer of their own so that a code change does not reinstall them. The project itself is not
# installed into site-packages: it runs from the source tree in /app, where shared/migrate.py finds
# deploy/postgres/migrations next to it.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin stockledger

COPY shared/ shared/
COPY services/ services/
COPY deploy/postgres/migrations/ deploy/postgres/migrations/

USER 10001:10001

# projector API, ledger metrics, replenisher metrics
EXPOSE 8080 8081 8082
