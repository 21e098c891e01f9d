# syntax=docker/dockerfile:1
# SOARS service image: build wheels in one stage, run from a slim one as a
# non-root user with no compilers, caches or build tools.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY soars ./soars
COPY schema ./schema
COPY resolvers ./resolvers
COPY auth ./auth
COPY audit ./audit
COPY db ./db
RUN python -m venv /opt/soars \
 && /opt/soars/bin/pip install --no-compile . \
 && find /opt/soars -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/soars/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOARS_MODE=production \
    SOARS_HOST=0.0.0.0 \
    SOARS_PORT=8000 \
    SOARS_DATA_DIR=/var/lib/soars
RUN groupadd --system --gid 10001 soars \
 && useradd --system --uid 10001 --gid soars --home-dir /var/lib/soars --shell /usr/sbin/nologin soars \
 && mkdir -p /var/lib/soars && chown soars:soars /var/lib/soars
COPY --from=build /opt/soars /opt/soars
USER 10001:10001
WORKDIR /var/lib/soars
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["soars"]
CMD ["serve"]
