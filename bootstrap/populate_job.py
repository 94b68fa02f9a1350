"""The populate Job's program (``python3.11 -m bootstrap.populate_job``, the entrypoint the
rendered Job runs in the product's image): the populate phase alone, inside the cluster.

It logs in to Vault with kubernetes auth (the pod's projected ServiceAccount token, of the
catalog's audience; role ``bootstrap-populate``), then runs populate exactly as ``invoke
bootstrap --only populate`` does (plan, apply with check-and-set, plan again) with that
token: no admin token, no custody, no Terraform, no cluster lock, no Kubernetes API call.
Values come from the catalog's sources: ``env:`` from the Job's environment, ``file:`` from
the catalog's folder (the ConfigMap's catalog and the files Secret the user makes,
projected), ``generate:``, ``copy:`` from the catalog's own paths;
a source it cannot use fails naming the path and key, and nothing is written.

Then it proves its token is confined: listing ``secret/metadata/`` and reading each
``--expect-denied`` path must be refused (403, printed); anything else fails the Job.
Never prints a value or a token. Exit 0: done; 1: populate or the confinement check failed;
2: bad arguments or an unreadable catalog; 70: a crash (its type only).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from bootstrap.clients import vault
from bootstrap.core.errors import BootstrapError
from bootstrap.model import conventions as conv
from bootstrap.model.actions import printed
from bootstrap.model.catalog import load_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext
from bootstrap.phases.registry import run_populate_only


def _say(msg: str) -> None:
    print(msg, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bootstrap.populate_job", description=__doc__)
    p.add_argument("--catalog", required=True, type=Path)
    p.add_argument("--vault-addr", required=True)
    p.add_argument("--role", default=conv.POPULATE_ROLE)
    p.add_argument("--token-file", required=True, type=Path, help="the ServiceAccount token")
    p.add_argument("--auth-mount", default=conv.AUTH_MOUNT)
    p.add_argument(
        "--expect-denied",
        action="append",
        default=[],
        metavar="PATH",
        help="a KV path (below the mount) this Job's token must not read; repeatable",
    )
    return p.parse_args(argv)


def confinement(api: vault.Api, denied: list[str]) -> list[str]:
    """Requests the token must be refused; each printed with Vault's answer. Returns what
    was not refused."""
    checks = [("LIST", f"{conv.KV_MOUNT}/metadata/")]
    checks += [("GET", conv.kv_data_path(p.strip("/"))) for p in denied]
    wrong = []
    for method, path in checks:
        try:
            status: int | None = api.request(method, path)[0]
        except vault.VaultRequestError as exc:
            status = exc.status
        if status == 403:
            _say(f"confinement: {method} {path}: 403 permission denied (as it must be)")
        else:
            _say(f"confinement: {method} {path}: answered {status}, NOT refused")
            wrong.append(f"{method} {path} answered {status}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    """Exit 70 on a crash (not one of the product's errors, so a bug), saying only the
    exception's type, whose text may hold anything; INVOKE_BOOTSTRAP_DEBUG=1 shows it."""
    try:
        return _main(argv)
    except Exception as exc:
        if os.environ.get("INVOKE_BOOTSTRAP_DEBUG") in ("1", "true", "yes"):
            raise
        _say(f"crashed: {type(exc).__name__} (an unexpected error; set INVOKE_BOOTSTRAP_DEBUG=1)")
        return 70


def _main(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    try:
        catalog = load_catalog(args.catalog)
    except BootstrapError as exc:
        _say(f"error: {exc}")
        return 2
    try:
        jwt = args.token_file.read_text(encoding="ascii").strip()
    except OSError as exc:
        _say(f"error: cannot read the ServiceAccount token {args.token_file}: {exc.strerror}")
        return 2
    try:
        token = vault.kubernetes_login(args.vault_addr, args.role, jwt, args.auth_mount)
    except vault.VaultRequestError as exc:
        _say(f"error: kubernetes login to {args.vault_addr} as role {args.role} failed: {exc}")
        return 1
    _say(f"logged in to {args.vault_addr} with kubernetes auth, role {args.role}")
    api = vault.Api(args.vault_addr, token)
    settings = Settings(catalog=args.catalog)
    ctx = RunContext(settings, catalog, vault_api=api)
    (result,) = run_populate_only(ctx, lambda phase, msg: _say(f"{phase}: {msg}"))
    for verb, target, reason in printed(result.actions):
        _say(f"  {verb:8} {target}: {reason}")
    code = 0
    if result.status == "failed":
        _say(f"populate failed: {result.error}")
        code = 1
    wrong = confinement(api, args.expect_denied)
    if wrong:
        _say("error: this Job's token reaches beyond the catalog's paths: " + "; ".join(wrong))
        code = 1
    _say(f"populate {result.status} in {time.monotonic() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
