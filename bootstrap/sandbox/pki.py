"""A throwaway PKI for the local sandbox: CA, apiserver serving certificate, an admin client
certificate, a client certificate for kube-controller-manager and the ServiceAccount signing
key. Files are written mode 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class SandboxPKI:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    controller_manager_cert: Path
    controller_manager_key: Path
    sa_key: Path
    sa_pub: Path


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


#: Every flag of the KeyUsage extension.
_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _key_usage(*granted: str) -> x509.KeyUsage:
    """The KeyUsage extension granting only the named usages."""
    return x509.KeyUsage(**{usage: usage in granted for usage in _KEY_USAGES})


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            _key_usage("digital_signature", "key_cert_sign", "crl_sign"), critical=True
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


#: The names the API server's serving certificate answers to.
_APISERVER_NAMES: list[x509.GeneralName] = [
    *(
        x509.DNSName(n)
        for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
    ),
    *(x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1")),
]


def _store(directory: Path, stem: str, cert: x509.Certificate, key: _Key) -> tuple[Path, Path]:
    """Write ``<stem>.crt`` and ``<stem>.key``; returns their paths."""
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_file, _key_pem(key))
    return cert_file, key_file


def generate(directory: Path) -> SandboxPKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cluster-secrets-bootstrap sandbox CA")
    ca = _store(directory, "ca", _issue(ca_name, ca_key, ca_name, ca_key, ca=True), ca_key)

    def leaf(
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, ca_name, ca_key, sans=sans, usage=[usage])
        return _store(directory, stem, cert, key)

    serving = leaf(
        "apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, _APISERVER_NAMES
    )
    admin = leaf("admin", _name("sandbox-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    # kube-controller-manager's own identity: the built-in RBAC binds this user name to the
    # system:kube-controller-manager ClusterRole (no cluster-admin).
    kcm = leaf(
        "controller-manager",
        _name("system:kube-controller-manager"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_file, sa_pub_file = directory / "sa.key", directory / "sa.pub"
    _write(sa_key_file, _key_pem(sa_key))
    _write(
        sa_pub_file,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return SandboxPKI(*ca, *serving, *admin, *kcm, sa_key_file, sa_pub_file)


DNS_USER = "system:coredns"


@dataclass(frozen=True)
class NodePKI:
    """The node sandbox's certificates, issued by the sandbox's CA."""

    #: kubelet's client certificate (system:node:<name> in system:nodes: the Node authorizer).
    kubelet_client_cert: Path
    kubelet_client_key: Path
    #: kubelet's serving certificate (the node's address), checked by the API server.
    kubelet_serving_cert: Path
    kubelet_serving_key: Path
    #: The API server's client certificate towards kubelets (logs, exec).
    apiserver_kubelet_cert: Path
    apiserver_kubelet_key: Path
    scheduler_cert: Path
    scheduler_key: Path
    #: CoreDNS's client certificate (system:coredns, bound to a ClusterRole that reads
    #: Services, EndpointSlices, Pods and Namespaces).
    dns_cert: Path
    dns_key: Path
    #: kube-proxy's client certificate (system:kube-proxy: the built-in system:node-proxier
    #: binding).
    proxy_cert: Path
    proxy_key: Path


def issue_node(directory: Path, node_name: str, node_ip: str) -> NodePKI:
    """Issue the node's certificates with the CA that :func:`generate` wrote there."""
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the sandbox CA's key is not an EC key")
    ca_name = ca.subject

    def leaf(
        stem: str, subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, ca_name, ca_key, sans=sans or None, usage=[usage])
        return _store(directory, stem, cert, key)

    client = ExtendedKeyUsageOID.CLIENT_AUTH
    return NodePKI(
        *leaf("kubelet-client", _name(f"system:node:{node_name}", "system:nodes"), client, []),
        *leaf(
            "kubelet-serving",
            _name(node_name),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName(node_name), x509.IPAddress(ipaddress.ip_address(node_ip))],
        ),
        # system:masters: the API server may use every kubelet API (logs, exec, port-forward)
        *leaf("apiserver-kubelet-client", _name("kube-apiserver", "system:masters"), client, []),
        *leaf("scheduler", _name("system:kube-scheduler"), client, []),
        *leaf("coredns", _name(DNS_USER), client, []),
        *leaf("kube-proxy", _name("system:kube-proxy"), client, []),
    )
