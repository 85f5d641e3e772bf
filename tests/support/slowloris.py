"""A slowloris attacker, run as its own process: many connections that send half a request, slowly.

``python -m tests.support.slowloris PORT SECONDS SOURCE:COUNT...`` opens COUNT connections from
each loopback SOURCE address (Linux routes all of 127/8 to lo), sends a request line and then
one header line per TRICKLE seconds, never the blank line that ends the headers. A connection
the server ends is opened again at once, until SECONDS pass. On exit it prints one JSON object:
how many connections were opened, how they ended (408, 503, silent close, reset), how long the
server kept each one, and the most that were open at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter

REQUEST_START = b"GET /model HTTP/1.1\r\nHost: attacker\r\n"


class Attack:
    def __init__(self, port: int, seconds: float, trickle: float) -> None:
        self.port = port
        self.stop_at = time.monotonic() + seconds
        self.trickle = trickle
        self.ends: Counter[str] = Counter()
        self.lifetimes: list[float] = []
        self.open = 0
        self.most_open = 0
        self.connect_errors = 0

    async def hold(self, source: str) -> None:
        while time.monotonic() < self.stop_at:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0)), 5
                )
            except (TimeoutError, OSError):
                self.connect_errors += 1
                await asyncio.sleep(0.2)
                continue
            started = time.monotonic()
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            try:
                end = await self._trickle(reader, writer)
            finally:
                self.open -= 1
                writer.close()
            if end != "attack_over":
                self.lifetimes.append(time.monotonic() - started)
            self.ends[end] += 1

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        try:
            writer.write(REQUEST_START)
            while time.monotonic() < self.stop_at:
                try:
                    data = await asyncio.wait_for(reader.read(4096), self.trickle)
                except TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    continue
                if not data:
                    return "closed"
                return data[9:12].decode("latin-1") if data.startswith(b"HTTP/1.1 ") else "garbage"
            return "attack_over"
        except (ConnectionError, OSError):
            return "reset"


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    attack = Attack(args.port, args.seconds, args.trickle)
    tasks = []
    for spec in args.sources:
        source, count = spec.split(":")
        tasks += [attack.hold(source) for _ in range(int(count))]
    await asyncio.gather(*tasks)
    lifetimes = sorted(attack.lifetimes)
    return {
        "opened": sum(attack.ends.values()),
        "ends": dict(attack.ends),
        "most_open": attack.most_open,
        "connect_errors": attack.connect_errors,
        "lifetime_min": lifetimes[0] if lifetimes else None,
        "lifetime_median": lifetimes[len(lifetimes) // 2] if lifetimes else None,
        "lifetime_max": lifetimes[-1] if lifetimes else None,
    }


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("sources", nargs="+", help="SOURCE:COUNT")
    parser.add_argument("--trickle", type=float, default=1.0)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(asyncio.run(main_async(args))) + "\n")


if __name__ == "__main__":
    main()
