"""The machine's floor for a request/response over loopback TCP while the cores are busy.

    python3 benches/machine/pingpong.py DUTY BURNERS [--short-slices]

Runs BURNERS processes that each spin for DUTY of every 10 ms and sleep the rest, then times
500 round trips (a 3-byte request, a 1,200-byte answer, one every 20 ms) between two other
processes. Nothing of Quill is involved: this is what any server on the machine would see.
With --short-slices both ends ask for 100 µs scheduler slices (sched_setattr, Linux 6.12+).
"""

import ctypes
import multiprocessing
import os
import socket
import struct
import sys
import time

ANSWER = b"x" * 1200
ROUND_TRIPS = 500


def short_slices():
    # struct sched_attr (version 0, 48 bytes): SCHED_OTHER with sched_runtime as the slice.
    attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQ", 48, 0, 0, 0, 0, 100_000, 0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(314, 0, attr, 0) != 0:  # SYS_sched_setattr on x86-64
        print("sched_setattr failed:", os.strerror(ctypes.get_errno()), file=sys.stderr)


def answer(port, short):
    if short:
        short_slices()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while conn.recv(100):
        conn.sendall(ANSWER)


def burn(duty, seconds):
    end = time.time() + seconds
    while time.time() < end:
        start = time.perf_counter()
        while time.perf_counter() - start < 0.010 * duty:
            pass
        time.sleep(0.010 * (1 - duty))


def main():
    duty, burners = float(sys.argv[1]), int(sys.argv[2])
    short = "--short-slices" in sys.argv
    port = 47000 + os.getpid() % 1000
    multiprocessing.Process(target=answer, args=(port, short), daemon=True).start()
    time.sleep(0.3)
    for _ in range(burners):
        multiprocessing.Process(target=burn, args=(duty, 12), daemon=True).start()
    time.sleep(0.5)
    if short:
        short_slices()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter()
        conn.sendall(b"GET")
        got = 0
        while got < len(ANSWER):
            got += len(conn.recv(65536))
        times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.02)
    times.sort()
    at = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{burners} burners at {duty:.0%}{', short slices' if short else ''}: "
          f"p50 {at(0.5):.3f} ms, p99 {at(0.99):.3f} ms, max {times[-1]:.3f} ms")


if __name__ == "__main__":
    main()
