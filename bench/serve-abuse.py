#!/usr/bin/env python3
"""Abuses a running `grab serve` while timing legitimate requests.

    serve-abuse.py BASE_URL PID [SILENT] [SECONDS]

Opens SILENT (default 300) sockets that never send a byte, reopening each as the
server closes it, sends a few oversize request heads (64 KiB and 1 MiB of
headers) every second, and meanwhile makes one legitimate GET / after another.
Prints the legitimate requests answered, their latency percentiles, and the
server's resident memory (VmRSS) before, at the peak during, and after.
"""
import socket, sys, threading, time, urllib.request

base, pid = sys.argv[1], int(sys.argv[2])
silent_count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20
host, port = base.split("//")[1].split(":")
port = int(port.rstrip("/"))


def rss_kib():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


stop = threading.Event()
peak = [0]
closed_by_server = [0]
oversize = {"431": 0, "closed": 0, "other": 0}


def silent_holder():
    sockets = []
    for _ in range(silent_count):
        s = socket.create_connection((host, port))
        s.setblocking(False)
        sockets.append(s)
    while not stop.is_set():
        for index, s in enumerate(sockets):
            try:
                if s.recv(1) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                closed_by_server[0] += 1
                s.close()
                fresh = socket.create_connection((host, port))
                fresh.setblocking(False)
                sockets[index] = fresh
        time.sleep(0.05)
    for s in sockets:
        s.close()


def oversize_sender():
    while not stop.is_set():
        for size in (64 * 1024, 1 << 20):
            try:
                s = socket.create_connection((host, port), timeout=10)
                head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
                try:
                    s.sendall(head)
                except OSError:
                    pass
                answer = s.recv(64)
                key = "431" if answer.startswith(b"HTTP/1.1 431") else ("closed" if not answer else "other")
            except OSError:
                key = "closed"
            oversize[key] += 1
            s.close()
        time.sleep(1)


def sampler():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib())
        time.sleep(0.1)


before = rss_kib()
threads = [threading.Thread(target=f) for f in (silent_holder, oversize_sender, sampler)]
for thread in threads:
    thread.start()
latencies, failures = [], 0
deadline = time.time() + seconds
while time.time() < deadline:
    started = time.time()
    try:
        with urllib.request.urlopen(base + "/", timeout=30) as response:
            response.read()
            latencies.append(time.time() - started)
    except Exception:
        failures += 1
stop.set()
for thread in threads:
    thread.join()
time.sleep(1)
after = rss_kib()
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
print(f"{silent_count} silent sockets ({closed_by_server[0]} closed by the server and reopened), "
      f"oversize heads: {oversize}")
print(f"legitimate: {len(latencies)} answered, {failures} failed; "
      f"p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {latencies[-1]*1000:.1f} ms")
print(f"server RSS: before {before/1024:.1f} MiB, peak during {peak[0]/1024:.1f} MiB, after {after/1024:.1f} MiB")
