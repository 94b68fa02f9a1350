"""A DNS question for an A record, over UDP, to one server: enough to tell the node
sandbox's DNS answers (``sandbox.up --node`` waits for it; the tests ask it), with the
standard library alone. :func:`question` and :func:`addresses` are pure."""

from __future__ import annotations

import secrets
import socket
import struct

A, IN = 1, 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsError(Exception):
    pass


def question(name: str, ident: int) -> bytes:
    """A recursive-desired query for ``name``'s A records."""
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".")]
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"not a DNS name: {name!r}")
    qname = b"".join(struct.pack("B", len(label)) + label for label in labels) + b"\0"
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", A, IN)


def _skip_name(msg: bytes, at: int) -> int:
    while True:
        if at >= len(msg):
            raise DnsError("truncated name")
        length = msg[at]
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length


def addresses(msg: bytes, ident: int) -> tuple[str, list[str]]:
    """The response code's name and the A records' addresses of a response to ``ident``."""
    if len(msg) < 12:
        raise DnsError("response shorter than a DNS header")
    got, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if got != ident or not flags & 0x8000:
        raise DnsError("not a response to this question")
    at = 12
    for _ in range(qd):
        at = _skip_name(msg, at) + 4
    found = []
    for _ in range(an):
        at = _skip_name(msg, at)
        if at + 10 > len(msg):
            raise DnsError("truncated record")
        rtype, rclass, _, length = struct.unpack(">HHIH", msg[at : at + 10])
        at += 10
        if at + length > len(msg):
            raise DnsError("truncated record")
        if rtype == A and rclass == IN and length == 4:
            found.append(socket.inet_ntoa(msg[at : at + 4]))
        at += length
    return RCODES.get(flags & 0xF, str(flags & 0xF)), found


def resolve(server: str, name: str, port: int = 53, timeout: float = 2.0) -> tuple[str, list[str]]:
    """Ask ``server`` for ``name``'s A records: (response code, addresses)."""
    ident = secrets.randbelow(0x10000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(question(name, ident), (server, port))
        msg, _ = sock.recvfrom(4096)
    return addresses(msg, ident)
