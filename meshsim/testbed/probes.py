"""Small probes run inside a namespace: ``python -m meshsim.testbed.probes KIND ...``.

- ``echo HOST PORT SECONDS``: a UDP echo server, for measuring a link's round trip.
- ``rtt HOST PORT COUNT``: send COUNT UDP probes one by one, print RTTs in microseconds.
- ``http URL TIMEOUT``: POST until one answer is 200 or TIMEOUT passes; print the status.
- ``tls HOST PORT CA CERT [SNI]``: try an mTLS exchange (CERT '-' for none); print 'ok' or
  why it was refused.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

__all__ = ["main"]


def echo(host: str, port: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.settimeout(seconds)
    print("ready", flush=True)
    try:
        while True:
            data, peer = sock.recvfrom(64)
            sock.sendto(data, peer)
            if data == b"bye":
                return
    except TimeoutError:
        return


def rtt(host: str, port: int, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    samples: list[float] = []
    deadline = time.monotonic() + 10
    while len(samples) < count and time.monotonic() < deadline:
        start = time.perf_counter_ns()
        sock.sendto(b"ping", (host, port))
        try:
            sock.recvfrom(64)
        except TimeoutError:
            continue
        samples.append((time.perf_counter_ns() - start) / 1000.0)
        time.sleep(0.002)
    sock.sendto(b"bye", (host, port))
    print(json.dumps(samples))


def http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    # straight to the address given: no proxy from the environment
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, data=b"", headers={"x-response-bytes": "16"})
        try:
            with opener.open(request, timeout=2) as response:
                if response.status == 200:
                    print(200)
                    return
                last = str(response.status)
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    print(f"failed: {last}")
    sys.exit(1)


def tls(host: str, port: int, ca_file: str, cert_file: str, sni: str | None) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(ca_file)
    if cert_file != "-":
        context.load_cert_chain(cert_file)
    try:
        # TLS 1.3: the server checks the client certificate after the handshake, so a
        # refusal shows on the first exchange.
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=sni) as conn,
        ):
            conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = conn.recv(64)
            print("ok" if data else "refused: connection closed")
    except (ssl.SSLError, OSError) as exc:
        print(f"refused: {exc}")


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "echo":
        echo(args[0], int(args[1]), float(args[2]))
    elif kind == "rtt":
        rtt(args[0], int(args[1]), int(args[2]))
    elif kind == "http":
        http(args[0], float(args[1]))
    elif kind == "tls":
        tls(args[0], int(args[1]), args[2], args[3], args[4] if len(args) > 4 else None)
    else:
        raise SystemExit(f"unknown probe {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
