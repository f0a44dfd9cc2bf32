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
# meshsim itself, plus what only the testbed's app and load generator import
RUN pip install . "aiohttp>=3.9" "locust>=2.20"
# not root, and not uid 1337 (Istio's proxy uid, whose traffic is never intercepted)
USER 1000:1000
CMD ["python", "-m", "meshsim.testbed.app", "/etc/meshsim/app.json"]
