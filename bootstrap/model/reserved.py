"""What a catalog may not claim or reach, given the settings it runs with.

The catalog parser refuses what is reserved everywhere (Vault's built-in policies, the
product's own policy, the cluster's system namespaces). The product's own objects move with
the settings: the custody Secret, the lock namespace and its Terraform state Secret, the token
reviewer's ServiceAccount, the operator's namespace, and the folders a ``file:`` source may
read. :func:`reserved_problems` checks a parsed catalog against them; tasks call
:func:`check_reserved` wherever they load a catalog. Pure: no client, no file read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from bootstrap.core.errors import CatalogError
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, Source
from bootstrap.model.settings import Settings


def _destinations(catalog: Catalog) -> Iterator[tuple[int, tuple[str | int, ...], str, str]]:
    """(service index, location, namespace, Secret name) of every destination Secret."""
    for i, svc in enumerate(catalog.services):
        for sname, spec in svc.secrets.items():
            yield i, ("services", i, "secrets", sname), svc.namespace, spec.destination or sname
        for j, read in enumerate(svc.reads):
            yield i, ("services", i, "reads", j), svc.namespace, read.destination or read.name


def _file_sources(catalog: Catalog) -> Iterator[tuple[tuple[str | int, ...], Source]]:
    for i, svc in enumerate(catalog.services):
        for sname, spec in svc.secrets.items():
            for key, src in spec.keys.items():
                if src is not None and src.file is not None:
                    yield ("services", i, "secrets", sname, "keys", key, "file"), src
    for scope in conv.RESERVED_PREFIXES:
        for name, scoped in catalog.scoped(scope).items():
            for key, src in scoped.keys.items():
                if src is not None and src.file is not None:
                    yield (scope, name, "keys", key, "file"), src


def is_within(path: str | Path, root: str | Path) -> bool:
    """``path`` is ``root`` or below it (both absolute and normalised by the caller)."""
    path, root = os.fspath(path), os.fspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def file_roots(catalog_path: Path, extra: Sequence[str]) -> list[str]:
    """The folders a file source may read, lexically normalised: the catalog's folder, then
    each ``source_file_roots`` entry (relative entries from the current directory)."""
    roots = [os.path.normpath(os.path.abspath(catalog_path.parent))]
    roots += [os.path.normpath(os.path.abspath(os.path.expanduser(r))) for r in extra if r]
    return roots


def reserved_problems(catalog: Catalog, settings: Settings) -> list[str]:
    """Every way ``catalog`` would claim one of the product's own objects under
    ``settings``, or reach a file outside the allowed folders, as located messages."""
    s = settings
    problems: list[str] = []
    for i, svc in enumerate(catalog.services):
        if svc.namespace == s.operator_namespace:
            problems.append(
                f"{catalog.where(('services', i, 'namespace'))}: namespace {svc.namespace!r} is "
                "the Vault Secrets Operator's own (setting operator_namespace); put the service "
                "in a namespace of its own"
            )
        account = conv.service_account_name(svc.name)
        if (svc.namespace, account) == (s.reviewer_namespace, s.reviewer_service_account):
            problems.append(
                f"{catalog.where(('services', i, 'name'))}: service {svc.name!r} in namespace "
                f"{svc.namespace!r} would take the token reviewer's ServiceAccount (settings "
                "reviewer_namespace, reviewer_service_account), which may review every token "
                "of the cluster; rename the service or move it"
            )
    reserved_secrets = {
        (s.custody_namespace, s.custody_secret): (
            "the custody Secret (settings custody_namespace, custody_secret) that holds the "
            "unseal keys and root token with custody: kubernetes"
        ),
        (s.lock_namespace, conv.TERRAFORM_STATE_SECRET): (
            "the Terraform state Secret of the kubernetes backend (setting lock_namespace)"
        ),
    }
    for i, loc, namespace, name in _destinations(catalog):
        what = reserved_secrets.get((namespace, name))
        if what is not None:
            svc = catalog.services[i]
            problems.append(
                f"{catalog.where(loc)}: destination Secret {name!r} in namespace {namespace!r} "
                f"is {what}; service {svc.name!r} must write another Secret (set 'destination')"
            )
    roots = file_roots(s.catalog, s.source_file_roots)
    for loc, src in _file_sources(catalog):
        assert src.file is not None
        base = roots[0]
        target = os.path.normpath(os.path.join(base, src.file))
        if not any(is_within(target, root) for root in roots):
            problems.append(
                f"{catalog.where(loc)}: file {src.file!r} is outside the catalog's folder "
                f"{base}"
                + (" and every source_file_roots entry" if len(roots) > 1 else "")
                + "; keep value files beside the catalog, or add their folder to the "
                "setting source_file_roots"
            )
    return problems


def check_reserved(catalog: Catalog, settings: Settings) -> None:
    """Raise :class:`CatalogError` (exit 2) listing every :func:`reserved_problems`."""
    problems = reserved_problems(catalog, settings)
    if problems:
        raise CatalogError(str(settings.catalog), problems)
