"""The node's way to the API server: a TCP forwarder that listens inside the node's network
namespace (on the ``kubernetes`` Service's ClusterIP, port 443) and connects, from the
machine's own namespace, to the API server on loopback. TLS passes through untouched (the
API server's certificate names the ClusterIP).

kubelet, kube-proxy and in-cluster clients (``KUBERNETES_SERVICE_HOST``) reach the API
through it; the API server never listens on anything but loopback. kube-proxy leaves that
Service alone (it carries ``service.kubernetes.io/service-proxy-name``): its EndpointSlice
names the API server on the machine's loopback, which no DNAT from the node could reach.

Run as a script (standard library only, so it starts quickly):
``python apiproxy.py NETNS LISTEN_IP LISTEN_PORT TARGET_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in(netns: str, host: str, port: int) -> socket.socket:
    """A listening socket made inside ``netns`` (a socket keeps the namespace it was made
    in); the calling thread then returns to its own namespace."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.create_server((host, port), backlog=256)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(sock: socket.socket, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    server = await asyncio.start_server(handle, sock=sock)
    print(f"listening on {sock.getsockname()}, forwarding to 127.0.0.1:{target_port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    netns, host, port, target = argv
    sock = listen_in(netns, host, int(port))  # before any thread starts
    asyncio.run(serve(sock, int(target)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
