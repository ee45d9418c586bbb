# One image, both programs: the manifests in deploy/ choose one with `command:`
# (kubemetrics-exporter or kubemetrics-adapter). The default entrypoint is the adapter, and
# /adapter points to it, so a prometheus-adapter Deployment (Helm chart: args start with
# /adapter; kube-prometheus: flags only) runs unchanged with this image.
#   docker build -t kubemetrics:0.1.0 .
# Runs as the non-root user 65532, the runAsUser in deploy/; needs no writable root filesystem.

FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/kubemetrics
WORKDIR /src
# Only what the package needs: tests, docs and deploy/ stay out of the image.
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY adapter ./adapter
RUN /opt/kubemetrics/bin/pip install .

FROM python:3.12-slim-bookworm
# The virtualenv's interpreter links to /usr/local/bin/python3.12, identical in both stages.
COPY --from=build /opt/kubemetrics /opt/kubemetrics
RUN ln -s /opt/kubemetrics/bin/kubemetrics-adapter /adapter
ENV PATH=/opt/kubemetrics/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# 9787: exporter /metrics; 6443: adapter HTTPS.
EXPOSE 9787 6443
ENTRYPOINT ["kubemetrics-adapter"]
