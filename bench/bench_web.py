"""Load test of the web explorer, loopback only and bounded: a real `contextlens serve`
process, C concurrent clients each sending R requests of a fixed mix, latency percentiles per
route, throughput, and the server's memory (peak and after the load, vs after the models loaded:
weights are loaded once and shared, so memory does not grow with clients). The peer is the same
answer computed in-process (no HTTP): ratio = HTTP latency p50 / in-process median.

    .venv/bin/python bench/bench_web.py [--clients 8] [--requests 15]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from common import machine, timeit, write_section
from fastapi.testclient import TestClient

from contextlens.web import create_app

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "The animal didn't cross the street because it was too tired"


@cache
def long_text(n_words: int = 420) -> str:
    """Real text (the WSC sentences joined), about 500 minilm tokens."""
    with open(ROOT / "tests/data/wsc-dev.jsonl", encoding="utf-8") as f:
        text = " ".join(json.loads(line)["text"] for line in f)
    return " ".join(text.split()[:n_words])


# The mix each client sends per round: (label, route, model, text of round i). The texts vary
# with i so that the server's trace cache cannot answer from memory.
MIX = [
    ("minilm attention, short", "/api/attention", "minilm", lambda i: f"{SENTENCE} ({i})."),
    ("minilm tokens, short", "/api/tokens", "minilm", lambda i: f"{SENTENCE} [{i}]."),
    ("smollm2 next token", "/api/next", "smollm2", lambda i: f"Item {i}: the capital of France is"),
    ("minilm attention, 500 tokens", "/api/attention", "minilm", lambda i: f"{i} {long_text()}"),
]


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("contextlens")
    proc = subprocess.Popen([cli, "serve", "--port", str(port), "--models", "minilm,smollm2"])
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("contextlens serve did not start") from None
            time.sleep(0.2)


def client(port: int, n: int, offset: int) -> list[tuple[str, float, int]]:
    """One client, one keep-alive connection: n rounds of the mix → (label, seconds, status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    out = []
    for i in range(offset, offset + n):
        for label, route, model, text in MIX:
            body = json.dumps({"model": model, "text": text(i)})
            t0 = time.perf_counter()
            conn.request("POST", route, body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            out.append((label, time.perf_counter() - t0, r.status))
    conn.close()
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def in_process() -> dict[str, float]:
    """The peer: each request of the mix answered by the app in this process, without a socket
    (fresh texts each run, as in the load)."""
    c = TestClient(create_app(["minilm", "smollm2"]), base_url="http://127.0.0.1:8000")
    rounds = iter(range(-1, -(10**6), -1))
    return {
        label: timeit(lambda: c.post(route, json={"model": model, "text": text(next(rounds))}))  # noqa: B023
        for label, route, model, text in MIX
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=15, help="rounds of the 4-request mix each")
    args = p.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        client(port, 1, 10**6)  # load the models (once) and warm up
        loaded = memory_mb(server.pid)["VmRSS"]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            jobs = [
                pool.submit(client, port, args.requests, c * args.requests)
                for c in range(args.clients)
            ]
            results = [r for j in jobs for r in j.result()]
        wall = time.perf_counter() - t0
        mem = memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    peer = in_process()
    total = len(results)
    errors = sum(status != 200 for _, _, status in results)
    lines = [
        f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_web.py --clients "
        f"{args.clients} --requests {args.requests}`.",
        "",
        f"A `contextlens serve` process on 127.0.0.1; {args.clients} concurrent clients (one "
        f"keep-alive connection each) × {args.requests} rounds of 4 requests = {total} requests "
        f"in {wall:.1f} s ({total / wall:.1f} requests/s), {errors} errors. Peer: the same "
        "request answered in-process (FastAPI TestClient, no socket, one at a time).",
        "",
        "| request | n | p50 s | p95 s | p99 s | max s | in-process s | p50 / in-process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in dict.fromkeys(r[0] for r in results):
        xs = [t for lab, t, _ in results if lab == label]
        p50 = statistics.median(xs)
        lines.append(
            f"| {label} | {len(xs)} | {p50:.3f} | {percentile(xs, 0.95):.3f} | "
            f"{percentile(xs, 0.99):.3f} | {max(xs):.3f} | {peer[label]:.3f} | "
            f"{p50 / peer[label]:.2f} |"
        )
    lines += [
        "",
        f"Server memory: {loaded:.0f} MB after the models loaded, {mem['VmRSS']:.0f} MB after the "
        f"load, peak {mem['VmHWM']:.0f} MB (the two models are loaded once and shared by all "
        "requests; the peak includes the cached traces of 500-token texts).",
    ]
    print("\n".join(lines))
    write_section("web", "## Web explorer under load\n\n" + "\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
