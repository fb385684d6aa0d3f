#!/usr/bin/env python3
"""Delay accuracy of `kbench proxy`: echo round trips through the proxy under each link fault.

usage: scripts/bench-proxy-delay.py [KBENCH_BINARY] [ROUNDS]   (default target/debug/kbench, 40)

Starts an echo server on 127.0.0.1 and one `kbench proxy` in front of it (both ended before
exit, the proxy by its own pid), then for each fault sends ROUNDS 4-byte pings one at a time and
prints the median, p10, p90, min and max round trip in ms. A round trip passes the proxy twice,
so `delay 100 0` should read about 200 ms.
"""
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

FAULTS = ["heal", "delay 10 0", "delay 100 0", "delay 100 20", "heal"]


def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(4096):
            conn.sendall(data)

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/kbench"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    upstream = echo_server()
    proxy = subprocess.Popen(
        [binary, "proxy", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--upstream", f"127.0.0.1:{upstream}"],
        stderr=subprocess.PIPE, text=True)
    try:
        line = proxy.stderr.readline()
        m = re.search(r"listening on [\d.]+:(\d+) .* control on [\d.]+:(\d+)", line)
        if not m:
            sys.exit(f"unexpected first line from kbench proxy: {line!r}")
        listen, control = int(m.group(1)), int(m.group(2))
        ctl = socket.create_connection(("127.0.0.1", control)).makefile("rw")
        conn = socket.create_connection(("127.0.0.1", listen))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for fault in FAULTS:
            ctl.write(fault + "\n")
            ctl.flush()
            ctl.readline()
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                conn.sendall(b"ping")
                got = b""
                while len(got) < 4:
                    got += conn.recv(16)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p10, p90 = times[len(times) // 10], times[len(times) * 9 // 10]
            print(f"{fault:14s} n={rounds} median {statistics.median(times):8.2f} ms"
                  f"  p10 {p10:8.2f}  p90 {p90:8.2f}  min {times[0]:8.2f}  max {times[-1]:8.2f}")
    finally:
        proxy.terminate()
        proxy.wait(10)


if __name__ == "__main__":
    main()
