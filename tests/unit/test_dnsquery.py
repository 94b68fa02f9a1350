"""The sandbox's DNS question and the reading of its answer (pure)."""

from __future__ import annotations

import struct

import pytest

from bootstrap.sandbox import dnsquery
from bootstrap.sandbox.node import _corefile


def _answer(ident: int, rcode: int, question: bytes, records: list[tuple[int, bytes]]) -> bytes:
    header = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(records), 0, 0)
    body = question[12:]
    for rtype, rdata in records:  # each name a pointer to the question's (offset 12)
        body += struct.pack(">HHHIH", 0xC00C, rtype, 1, 5, len(rdata)) + rdata
    return header + body


def test_question_asks_for_a_records_of_the_name() -> None:
    q = dnsquery.question("kubernetes.default.svc.cluster.local", 0x1234)
    assert q[:4] == b"\x12\x34\x01\x00"  # id, recursion desired
    assert b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00" in q
    assert q.endswith(b"\x00\x01\x00\x01")  # A, IN
    with pytest.raises(ValueError, match="not a DNS name"):
        dnsquery.question("a..b", 1)


def test_answers_are_read_and_other_records_skipped() -> None:
    q = dnsquery.question("openbao-0.openbao-internal.openbao.svc.cluster.local", 7)
    cname = b"\x03abc\x00"
    msg = _answer(7, 0, q, [(5, cname), (1, bytes([10, 0, 0, 9])), (1, bytes([10, 0, 0, 10]))])
    assert dnsquery.addresses(msg, 7) == ("NOERROR", ["10.0.0.9", "10.0.0.10"])
    assert dnsquery.addresses(_answer(7, 3, q, []), 7) == ("NXDOMAIN", [])
    with pytest.raises(dnsquery.DnsError, match="not a response to this question"):
        dnsquery.addresses(msg, 8)
    with pytest.raises(dnsquery.DnsError, match="truncated"):
        dnsquery.addresses(msg[:-3], 7)


def test_the_corefile_serves_the_cluster_zone_and_refuses_the_rest() -> None:
    from pathlib import Path

    text = _corefile(Path("/s/node/dns/coredns.kubeconfig"))
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text
    assert "kubeconfig /s/node/dns/coredns.kubeconfig" in text
    # nothing is forwarded anywhere: every other name is answered NXDOMAIN here
    assert "forward" not in text and "rcode NXDOMAIN" in text
