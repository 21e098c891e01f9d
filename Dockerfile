# syntax=docker/dockerfile:1
# The SOARS service image. One stage builds a virtual environment with the
# pinned dependencies; the image that runs holds only that environment on a
# slim Python base, as a non-root user, with no compiler, build tool or
# package cache. tests/test_dockerfile.py checks these properties.
#
#   docker build -t soars:0.1.0 .
#   docker run --env-file .env -p 127.0.0.1:8000:8000 soars:0.1.0
#
# The base is the Python the project is developed and tested on (3.11.7).
# Pin it by digest as well where your registry policy asks for that:
#   --build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest>

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the package is built from: a change to the docs or tests does
# not rebuild the environment.
COPY pyproject.toml ./
COPY soars ./soars
COPY schema ./schema
COPY resolvers ./resolvers
COPY auth ./auth
COPY audit ./audit
COPY db ./db
COPY portal ./portal
RUN python -m venv /opt/soars \
 && /opt/soars/bin/pip install --no-cache-dir --no-compile . \
 && /opt/soars/bin/pip uninstall --yes pip \
 && find /opt/soars -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="soars" \
      org.opencontainers.image.description="Student-level accountability files for LEAs and charter schools, every access audited" \
      org.opencontainers.image.version="0.1.0"
ENV PATH=/opt/soars/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOARS_MODE=production \
    SOARS_HOST=0.0.0.0 \
    SOARS_PORT=8000 \
    SOARS_DATA_DIR=/var/lib/soars
RUN groupadd --system --gid 10001 soars \
 && useradd --system --uid 10001 --gid soars --no-create-home \
            --home-dir /var/lib/soars --shell /usr/sbin/nologin soars \
 && mkdir -p /var/lib/soars \
 && chown soars:soars /var/lib/soars
# Owned by root: the service cannot rewrite its own code.
COPY --from=build /opt/soars /opt/soars
USER 10001:10001
WORKDIR /var/lib/soars
EXPOSE 8000
# Alive, not ready: an orchestrator must not restart a replica because
# PostgreSQL or the identity provider is away (ask `soars health --ready`
# from a readiness probe for that).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["soars", "health"]
ENTRYPOINT ["soars"]
CMD ["serve"]
