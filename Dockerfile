# syntax=docker/dockerfile:1
# Smart Maintenance web image: gunicorn serving the Django monolith, static files by WhiteNoise.
# The same image runs the one-off jobs (manage.py migrate, seed_data, train_models, doctor,
# score_readings, check_alerts): see docs/deploy.md.

# --- build: the dependencies in a virtualenv ------------------------------------------------
# Every pinned requirement has a wheel for Python 3.12 except django-timescaledb, whose sdist is
# pure Python: no compiler is needed here either, and none reaches the final image.
FROM python:3.12.12-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install --requirement /tmp/requirements.txt

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.12.12-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY . /app

# Static files are collected at build time, in production mode (content-hashed names and compressed
# copies, see STORAGES in settings). collectstatic needs settings but no database or secret.
# var/ is the only directory the app writes to (the embedded defaults' state); the code stays root's.
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p /app/var \
    && chown app:app /app/var

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]

# Exec form: gunicorn is PID 1 and gets SIGTERM itself (graceful shutdown, GUNICORN_GRACEFUL_TIMEOUT).
CMD ["gunicorn", "--config", "/app/docker/gunicorn.conf.py", "smartmaint.wsgi:application"]
