#!/usr/bin/env python3
"""A loopback TCP proxy that adds a fixed delay in each direction, for walstore's benchmarks
and tests at a real region's round-trip time (e.g. --delay-ms 25: 50 ms RTT).

A new connection first waits one round trip (2 x the delay, as a TCP handshake would). Every
chunk read from one side is written to the other side --delay-ms after it arrived; chunks
are not held back by the ones before them beyond that, so the delay is added to the latency
but does not cap the bandwidth (a stream keeps flowing at the upstream's rate, shifted in
time). It speaks no protocol: HTTP, TLS or anything else passes through unchanged.

  latency_proxy.py --upstream HOST:PORT --delay-ms MS --port-file FILE [--port N]

listens on 127.0.0.1 (port N, default any free one), writes the port to FILE once it accepts
connections, and runs until killed. Python 3 standard library only.
"""
import argparse
import asyncio
import time

from loopback_util import publish_port


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk `delay` seconds after it arrived."""
    queue = asyncio.Queue()

    async def read_side():
        try:
            while True:
                data = await reader.read(1 << 16)
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((time.monotonic() + delay, b""))

    async def write_side():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read_side(), write_side())


async def serve(args):
    host, port = args.upstream.rsplit(":", 1)
    delay = args.delay_ms / 1000.0

    async def handle(client_reader, client_writer):
        # A new connection costs a round trip (the TCP handshake) before any data moves.
        await asyncio.sleep(2 * delay)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer, delay),
                             pump(up_reader, client_writer, delay))
        for w in (client_writer, up_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    bound = server.sockets[0].getsockname()[1]
    publish_port(args.port_file, bound)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="delay per direction")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
