# The service's image: the web (default command) and the worker (`python worker.py`) run from it;
# compose.yaml runs both beside Redis. Only the production requirements are installed.
#   docker build -t jobsvc .
#   docker run -e REDIS_URL=redis://redis:6379/0 -p 5000:5000 jobsvc              # the web
#   docker run -e REDIS_URL=redis://redis:6379/0 jobsvc python worker.py         # a worker
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The service as a wheel (webapp, jobs, their Lua scripts, templates and static files).
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md requirements.in ./
COPY webapp ./webapp
COPY jobs ./jobs
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The pinned production requirements alone, then the service itself without dependencies.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN python -m pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
# The deployment files: the Procfile's commands run from here.
WORKDIR /app
COPY Procfile gunicorn.conf.py worker.py .flaskenv ./
RUN useradd --system --uid 10001 --gid 0 --home-dir /app --shell /usr/sbin/nologin jobsvc
USER 10001
ENV HOST=0.0.0.0 \
    PORT=5000 \
    FLASK_APP=webapp
EXPOSE 5000
# SIGTERM: gunicorn ends open event streams and finishes requests within WEB_GRACEFUL_TIMEOUT
# (25 s); worker.py lets running jobs finish within WORKER_SHUTDOWN_GRACE (25 s), then hands
# them back. Give the container 30 s before SIGKILL (docker stop -t 30; compose.yaml
# stop_grace_period: 30s); RELIABILITY.md, "Graceful shutdown, per platform".
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=2)"]
# Exec form: the process is PID 1 and gets the SIGTERM itself (no shell in between).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "webapp:create_app()"]
