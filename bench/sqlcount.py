"""A counting TCP proxy in front of MariaDB: how many SQL statements of each kind the service sends.

    python bench/sqlcount.py --listen-port P --target-host H --target-port Q

Used by the scenarios with `--count-sql` (the service's DATABASE_URL then points here). Every byte is forwarded
unchanged; the client-to-server stream is also cut into MySQL protocol packets, and each command packet
(sequence id 0) is counted by its command byte, a COM_QUERY by the first words of its SQL (SELECT, SELECT ... FOR
UPDATE, INSERT, UPDATE, DELETE, BEGIN, COMMIT, ROLLBACK, SET, other), and as one round trip ("round trips": a
transaction's BEGIN and COMMIT travel in the packets of its first and last statements). Only the service's statements pass through
here, so the counts are exact whatever else the shared MariaDB is doing, unlike its global Com_* counters. It
costs CPU of its own (a Python hop on every packet), so figures measured with it are not quoted as timings.

Prints `{"event": "ready"}`; then for each line on stdin prints the counters so far as one JSON line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter

COMMANDS = {0x01: "quit", 0x02: "init_db", 0x0e: "ping", 0x16: "stmt_prepare", 0x17: "stmt_execute",
            0x19: "stmt_close", 0x11: "change_user", 0x1f: "reset_connection"}
COUNTS: Counter = Counter()


def classify(sql: bytes) -> str:
    """The kind of one COM_QUERY statement."""
    head = sql[:200].lstrip().upper()
    if head.startswith(b"/*"):
        head = head.split(b"*/", 1)[-1].lstrip()
    word = head.split(None, 1)[0].decode("ascii", "replace") if head else ""
    if word == "SELECT":
        return "SELECT FOR UPDATE" if sql.rstrip().upper().endswith(b"FOR UPDATE") else "SELECT"
    if word == "START":
        return "BEGIN"
    if word in ("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SET", "REPLACE", "SHOW"):
        return word
    return "other"


# Where one statement of a packet ends and the next begins (the service's texts: `BEGIN;SELECT ...;COMMIT`). A value
# holding ";INSERT" would be miscounted; these are counts for a benchmark, not a parser.
_NEXT_STATEMENT = re.compile(rb";(?=(?:BEGIN|COMMIT|ROLLBACK|SELECT|INSERT|UPDATE|DELETE|SET)\b)", re.IGNORECASE)


def classify_packet(sql: bytes) -> list[str]:
    """The kinds of the statements of one COM_QUERY packet: a transaction's BEGIN and COMMIT travel with its first
    and last statements (models/piggyback.py), and a change with its audit row."""
    return [classify(part) for part in _NEXT_STATEMENT.split(sql)]


class PacketCounter:
    """Cuts the client's byte stream into packets and counts the commands."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes):
        """Take a chunk of the client's stream."""
        self.buf += data
        while len(self.buf) >= 4:
            length = self.buf[0] | self.buf[1] << 8 | self.buf[2] << 16
            if len(self.buf) < 4 + length:
                return
            seq, payload = self.buf[3], bytes(self.buf[4:4 + length])
            del self.buf[:4 + length]
            if seq == 0 and payload:  # a new command; the handshake answers have seq >= 1
                command = payload[0]
                if command == 0x03:
                    for kind in classify_packet(payload[1:]):
                        COUNTS[kind] += 1
                        COUNTS["statements"] += 1
                    COUNTS["round trips"] += 1
                else:
                    COUNTS[COMMANDS.get(command, f"command 0x{command:02x}")] += 1


async def pipe(reader, writer, counter=None):
    """Copy one direction until EOF."""
    try:
        while data := await reader.read(65536):
            if counter is not None:
                counter.feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(args):
    """Accept, connect to the target, pipe both ways; answer a snapshot per stdin line."""
    async def handle(client_reader, client_writer):
        COUNTS["connections"] += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(args.target_host, args.target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, PacketCounter()), pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen_port, backlog=1024)
    print(json.dumps({"event": "ready"}), flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps(dict(COUNTS)), flush=True)
    server.close()


def main():
    """Parse the arguments and serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
