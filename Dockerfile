# The application image for web, worker, beat and the migrate job (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (from pyproject.toml, via stub packages), so a code change does not
# reinstall them. The code itself runs from /app, the working directory.
COPY pyproject.toml ./
RUN mkdir -p cdp consent segmentation \
    && touch cdp/__init__.py consent/__init__.py segmentation/__init__.py \
    && pip install . \
    && pip uninstall -y cdp \
    && rm -rf build cdp consent segmentation

# Only the code: never var/ (development keys, the embedded database) or a local .env.
COPY manage.py ./
COPY cdp cdp
COPY consent consent
COPY segmentation segmentation

# collectstatic needs settings but no database or secrets: throwaway development settings
# (a DATABASE_URL that is never connected to, keys generated into a directory deleted after).
RUN CDP_ENV=development DATABASE_URL=postgres://build@localhost/build CDP_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var

RUN useradd --create-home --uid 10001 cdp && mkdir -p /app/var && chown cdp /app/var
USER cdp

EXPOSE 8000
CMD ["gunicorn", "cdp.wsgi", "--bind=0.0.0.0:8000", "--workers=3", "--access-logfile=-"]
