# The image the kind backend runs: the testbed's app (python -m meshsim.testbed.app) in
# every app pod, and Locust with meshsim/testbed/locustfile.py in the load generator's
# pod. Same code as the local testbed. Built and loaded by `meshsim measure --backend kind`:
#   docker build -t meshsim-testbed:VERSION . && kind load docker-image meshsim-testbed:VERSION
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/meshsim
COPY pyproject.toml README.md ./
COPY meshsim ./meshsim
# meshsim with its testbed extra: the apps' aiohttp and Locust
RUN pip install ".[testbed]"
# not root, and not uid 1337 (Istio's proxy uid, whose traffic is never intercepted)
USER 1000:1000
CMD ["python", "-m", "meshsim.testbed.app", "/etc/meshsim/app.json"]
