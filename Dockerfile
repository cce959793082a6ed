# The image docker-compose.yml builds: Takt and its dependencies, run as an unprivileged user.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler
COPY beat ./beat
COPY workers ./workers
# With the otel extra, so that TAKT_TRACING=true traces in the image (docs/operations.md).
RUN pip install --no-cache-dir ".[otel]" && useradd --system --uid 10001 takt
USER takt
ENV TAKT_DATA_DIR=/tmp/takt
EXPOSE 8000 5555
CMD ["takt", "api"]
