#!/usr/bin/env python3
"""Memory for many rooms with full history (docs/PERFORMANCE.md, issue 19).

Fills a roomcast database with ROOMS rooms of EVENTS messages each (plus
each room's one join), starts the release binary on it with the given
flags, and prints its resident memory once it serves, then again after
one more message in every room (which takes each room's newest into
memory, past the budget). Usage:

    cargo build --release
    python3 benches/history_memory.py [ROOMS [EVENTS [TEXT_LEN]]] [-- roomcast flags]

It needs nothing beyond Python's standard library.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "roomcast")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def code_of(n):
    letters = ""
    for _ in range(4):
        letters += chr(ord("A") + n % 26)
        n //= 26
    return letters


def token_of(n):
    """Room n's one participant's session (its bearer token)."""
    return f"{n + 1:032x}"


def fill(db, rooms, events, text_len):
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now_ms = int(time.time() * 1000)
    text = "x" * text_len
    with conn:
        for r in range(rooms):
            code = code_of(r)
            conn.execute("INSERT INTO sessions (id, used_ms) VALUES (?, ?)", (token_of(r), now_ms))
            last = events + 1
            conn.execute(
                "INSERT INTO rooms (code, created_ms, last_activity_ms, last_id, messages, notices)"
                " VALUES (?, ?, ?, ?, ?, 1)",
                (code, now_ms, now_ms - r, last, events),
            )
            conn.execute(
                "INSERT INTO participants (session, room, name, watch) VALUES (?, ?, 'al', 0)",
                (token_of(r), code),
            )
            ts = "2026-12-02T00:00:00.000Z"
            rows = [(code, 1, "join", "al", None, ts)]
            rows += [(code, i, "message", "al", f"{i} {text}", ts) for i in range(2, last + 1)]
            conn.executemany(
                "INSERT INTO events (room, id, kind, name, text, ts) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
    conn.close()


def start(db, port, flags):
    args = [BIN, "--db", db, "--bind", f"127.0.0.1:{port}"] + flags
    env = dict(os.environ, ROOMCAST_POST_BURST="1e9", ROOMCAST_POST_RATE="1e9",
               ROOMCAST_JOIN_BURST="1e9", ROOMCAST_JOIN_RATE="1e9")
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    began = time.time()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server, time.time() - began
        except OSError:
            if server.poll() is not None:
                sys.exit("roomcast exited at start")
            time.sleep(0.05)


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def main():
    argv = sys.argv[1:]
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    rooms = int(argv[0]) if len(argv) > 0 else 10_000
    events = int(argv[1]) if len(argv) > 1 else 1000
    text_len = int(argv[2]) if len(argv) > 2 else 100
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "chat.db")
        port = 30000 + os.getpid() % 20000
        server, _ = start(db, port, flags)  # makes the schema
        server.send_signal(signal.SIGTERM)
        server.wait()
        began = time.time()
        fill(db, rooms, events, text_len)
        filled = time.time() - began
        server, took = start(db, port, flags)
        at_start = rss_kb(server.pid)
        held = metric(port, "roomcast_history_memory_bytes")
        # One more message in every room, by the participant stored above
        # (whose session id the script wrote into the database).
        for r in range(rooms):
            token = token_of(r)
            body = json.dumps({"text": "one more"}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/rooms/{code_of(r)}/messages", data=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            urllib.request.urlopen(request)
        after = rss_kb(server.pid)
        held_after = metric(port, "roomcast_history_memory_bytes")
        server.send_signal(signal.SIGTERM)
        server.wait()
        print(json.dumps({
            "rooms": rooms, "events_per_room": events + 1, "text_len": text_len, "flags": flags,
            "fill_s": round(filled, 1), "start_s": round(took, 2),
            "rss_mb_at_start": round(at_start / 1024, 1), "history_mb_at_start": round(held / 2**20, 1),
            "rss_mb_after_a_post_in_every_room": round(after / 1024, 1),
            "history_mb_after": round(held_after / 2**20, 1),
        }))


if __name__ == "__main__":
    main()
