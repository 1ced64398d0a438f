# The image of docs/distributed.md's Kubernetes example: loadbench and its dependencies, nothing else.
#   docker build -t registry.example.com/loadbench:latest .
# Master and workers run the same image: `loadbench master ...` / `loadbench worker ...`.
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY loadbench ./loadbench
COPY scenarios ./scenarios
# The built-in scenarios are found beside the installed package (loadbench/drive/locustfiles.py,
# BUILTIN_SCENARIOS_DIR), and `pip install .` installs only the package: copy them there.
RUN pip install --no-cache-dir . \
    && cp -r scenarios "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/scenarios" \
    && rm -rf /src

# An unprivileged user; run directories go under /reports (a volume in the example).
RUN useradd --create-home --uid 10001 loadbench && mkdir /reports && chown loadbench /reports
USER loadbench
WORKDIR /reports
ENTRYPOINT ["loadbench"]
