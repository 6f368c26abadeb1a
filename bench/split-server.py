#!/usr/bin/env python3
"""The server bench/split.sh downloads from: one file of --size bytes at /file.bin,
with a strong ETag and byte ranges (206, Content-Range, If-Range), each connection
sending at most --rate bytes per second, as a mirror that caps each client
connection does. Keep-alive; a client that closes mid-body is let go.

Prints `serving on http://127.0.0.1:PORT/file.bin sha256 HEX` once it listens.
"""

import argparse
import asyncio
import hashlib
import random
import time

ETAG = '"split-bench-1"'
CHUNK = 64 * 1024


def make_body(size):
    # One random MiB repeated: cheap to make, and no two neighbouring pieces
    # are alike.
    block = random.Random(25).randbytes(1024 * 1024)
    return (block * (size // len(block) + 1))[:size]


def parse_range(value, total):
    if not value.startswith("bytes="):
        return None
    start, _, end = value[len("bytes="):].partition("-")
    try:
        start = int(start)
        end = min(int(end), total - 1) if end.strip() else total - 1
    except ValueError:
        return None
    return (start, end) if start <= end else None


async def send_body(writer, body, start, end, rate):
    # The connection's own clock: a chunk goes when the bytes before it have
    # been paid for at `rate`.
    began = time.monotonic()
    sent = 0
    position = start
    while position <= end:
        chunk = body[position:min(position + CHUNK, end + 1)]
        writer.write(chunk)
        await writer.drain()
        position += len(chunk)
        sent += len(chunk)
        wait = began + sent / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


async def handle(reader, writer, body, rate):
    total = len(body)
    try:
        while True:
            request = await reader.readline()
            if not request:
                return
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if_range = headers.get("if-range")
            asked = None
            if "range" in headers and (if_range is None or if_range == ETAG):
                asked = parse_range(headers["range"], total)
            start, end = asked if asked else (0, total - 1)
            status = "206 Partial Content" if asked else "200 OK"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {end - start + 1}\r\nETag: {ETAG}\r\nAccept-Ranges: bytes\r\n"
            )
            if asked:
                head += f"Content-Range: bytes {start}-{end}/{total}\r\n"
            writer.write((head + "\r\n").encode())
            await send_body(writer, body, start, end, rate)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--rate", type=float, default=4_000_000, help="bytes per second per connection")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    body = make_body(arguments.size)
    server = await asyncio.start_server(
        lambda reader, writer: handle(reader, writer, body, arguments.rate), "127.0.0.1", arguments.port
    )
    port = server.sockets[0].getsockname()[1]
    print(f"serving on http://127.0.0.1:{port}/file.bin sha256 {hashlib.sha256(body).hexdigest()}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
