"""The testbed's app: one aiohttp service per pod that does what its workload says.

Run as ``python -m meshsim.testbed.app CONFIG.json`` inside the pod's namespace. Per
request it burns the workload's `cpu_time` on its CPU, waits its `service_time` off CPU,
makes its calls (each to a replica picked at random, sequential or in parallel, with the
call's request body and asking for the call's response size) and answers with the
number of bytes the caller asked for in the `x-response-bytes` header.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from meshsim.engines.des import child_rng
from meshsim.scenario import Call, Workload

__all__ = ["RESPONSE_BYTES_HEADER", "burn_cpu", "main"]

RESPONSE_BYTES_HEADER = "x-response-bytes"
_BATCH = 1024


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used `seconds` of CPU (not wall time)."""
    if seconds <= 0:
        return
    end = time.thread_time_ns() + int(seconds * 1e9)
    while time.thread_time_ns() < end:
        pass


class _Samples:
    """Batches of draws from a distribution (numpy per call is slow)."""

    def __init__(self, draw: Any):
        self._draw, self._buf, self._i = draw, np.empty(0), 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf, self._i = self._draw(_BATCH), 0
        value = float(self._buf[self._i])
        self._i += 1
        return value


class App:
    def __init__(self, config: dict[str, Any]):
        self.workload = Workload.model_validate(config["workload"])
        self.callees: dict[str, list[str]] = config["callees"]
        self.port = int(config["port"])
        self.idle_s = float(config["idle_timeout_s"])
        rng = child_rng(int(config["seed"]), f"testbed/app/{config['pod']}")
        self.rng = rng
        self.cpu = _Samples(lambda n: self.workload.cpu_time.sample_s(rng, n))
        self.wait = _Samples(lambda n: self.workload.service_time.sample_s(rng, n))
        self.limit = (
            asyncio.Semaphore(self.workload.concurrency) if self.workload.concurrency else None
        )
        self.session: ClientSession | None = None

    def calls_made(self) -> list[Call]:
        made = []
        for call in self.workload.calls:
            for _ in range(call.count):
                if call.probability >= 1.0 or self.rng.random() < call.probability:
                    made.append(call)
        return made

    async def call(self, call: Call) -> None:
        assert self.session is not None
        targets = self.callees[call.to]
        ip = targets[int(self.rng.integers(len(targets)))]
        async with self.session.post(
            f"http://{ip}:{self.port}/{call.to}",
            data=b"x" * call.request_bytes,
            headers={RESPONSE_BYTES_HEADER: str(call.response_bytes)},
        ) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{call.to} at {ip} answered {response.status}")

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        size = int(request.headers.get(RESPONSE_BYTES_HEADER, "0"))
        if self.limit is not None:
            async with self.limit:
                return await self.serve(size)
        return await self.serve(size)

    async def serve(self, size: int) -> web.Response:
        burn_cpu(self.cpu.next())
        wait = self.wait.next()
        if wait > 0:
            await asyncio.sleep(wait)
        calls = self.calls_made()
        try:
            if self.workload.fanout == "parallel" and len(calls) > 1:
                await asyncio.gather(*(self.call(c) for c in calls))
            else:
                for c in calls:
                    await self.call(c)
        except Exception as exc:  # a failed call fails the request, visibly
            return web.Response(status=502, text=f"downstream call failed: {exc}")
        return web.Response(body=b"x" * size)

    async def run(self, ready_file: Path) -> None:
        connector = TCPConnector(limit=0, keepalive_timeout=self.idle_s)
        self.session = ClientSession(connector=connector, timeout=ClientTimeout(total=30))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", self.port, backlog=1024).start()
        ready_file.write_text("ready\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.session.close()
        await runner.cleanup()


def main(argv: list[str]) -> None:
    config_path = Path(argv[0])
    config = json.loads(config_path.read_text())
    asyncio.run(App(config).run(config_path.with_suffix(".ready")))


if __name__ == "__main__":
    main(sys.argv[1:])
