"""What a catalog may not claim or reach, given the settings it runs with.

The catalog parser refuses what is reserved everywhere (Vault's built-in policies, the
product's own policy, the cluster's system namespaces). The product's own objects move with
the settings: the custody Secrets, the lock namespace and its Terraform state Secret, the token
reviewer's ServiceAccount, the operator's namespace, the populate Job's namespace, the folders
a ``file:`` source may read, and whether and which ``command:`` sources may run (setting
catalog_commands; the program's file itself is checked when it runs, in
``bootstrap.runtime.sources``). :func:`reserved_problems` checks a parsed catalog against
them; tasks call :func:`check_reserved` wherever they load a catalog. Pure: no client, no file read.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path

from bootstrap.core.errors import CatalogError
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, Source, show
from bootstrap.model.settings import Settings


def _destinations(catalog: Catalog) -> Iterator[tuple[int, tuple[str | int, ...], str, str]]:
    """(service index, location, namespace, Secret name) of every destination Secret."""
    for i, svc in enumerate(catalog.services):
        for sname, spec in svc.secrets.items():
            yield i, ("services", i, "secrets", sname), svc.namespace, spec.destination or sname
        for j, read in enumerate(svc.reads):
            yield i, ("services", i, "reads", j), svc.namespace, read.destination or read.name


def _sources(
    catalog: Catalog, kind: str
) -> Iterator[tuple[tuple[str | int, ...], str, str, Source]]:
    """(location, KV path, key, source) of every source of one kind (``file``, ``command``)."""
    for i, svc in enumerate(catalog.services):
        for sname, spec in svc.secrets.items():
            for key, src in spec.keys.items():
                if src is not None and getattr(src, kind) is not None:
                    loc = ("services", i, "secrets", sname, "keys", key, kind)
                    yield loc, conv.kv_path(svc.name, sname), key, src
    for scope in conv.RESERVED_PREFIXES:
        for name, scoped in catalog.scoped(scope).items():
            for key, src in scoped.keys.items():
                if src is not None and getattr(src, kind) is not None:
                    yield (scope, name, "keys", key, kind), conv.kv_path(scope, name), key, src


def _file_sources(catalog: Catalog) -> Iterator[tuple[tuple[str | int, ...], Source]]:
    for loc, _path, _key, src in _sources(catalog, "file"):
        yield loc, src


def argv_text(argv: Sequence[str]) -> str:
    """A command as a shell would read it, for plans and messages: each argument quoted
    where it needs to be, one with control characters as a Python literal (never raw)."""
    return " ".join(shlex.quote(a) if a.isprintable() else repr(a) for a in argv)


def command_sources(catalog: Catalog) -> list[tuple[str, str, list[str]]]:
    """(KV path, key, argv) of every ``command:`` source, in catalog order: what ``check``
    and ``plan`` print (issue 23, finding 1)."""
    return [
        (path, key, list(src.command or []))
        for _loc, path, key, src in _sources(catalog, "command")
    ]


#: Why a command source's program must be a path inside the catalog's folder.
_PROGRAM_RULE = (
    "a command source runs only a program inside the catalog's folder, named by its path "
    "relative to the catalog file (e.g. './fetch-value' or 'bin/fetch-value'); no PATH "
    "lookup, no absolute path, no shell"
)


def program_problem(program: str) -> str | None:
    """Why ``program`` (a command source's argv[0]) cannot name a program inside the
    catalog's folder, lexically (None when it can; the file itself is checked when it
    runs: symlinks resolved, a regular executable file)."""
    if program.startswith("/") or program.startswith("~"):
        return f"program {show(program)} is an absolute path; {_PROGRAM_RULE}"
    if "/" not in program:
        return (
            f"program {show(program)} is a bare name, which would be looked up in PATH; "
            f"{_PROGRAM_RULE}"
        )
    normal = posixpath.normpath(program)
    if normal == "." or normal == ".." or normal.startswith("../"):
        return f"program {show(program)} is outside the catalog's folder; {_PROGRAM_RULE}"
    return None


def protected_paths(settings: Settings) -> list[str]:
    """The folders and files a command's arguments may not name: the state folder (reports,
    local custody, Terraform state), the sandbox's folder (its custody, keys and
    kubeconfigs), the custody file and its folder, absolute and normalised."""
    s = settings
    found = [s.state_dir, s.sandbox_dir, *([s.custody_file] if s.custody_file else [])]
    paths = [os.path.normpath(os.path.abspath(os.path.expanduser(p))) for p in found]
    if s.custody_file:
        # the custody folder (the admin credential's file sits beside the record), unless it
        # holds the catalog itself
        folder = os.path.dirname(paths[-1])
        if not is_within(file_roots(s.catalog, ())[0], folder):
            paths.append(folder)
    return paths


def _names_protected(arg: str, base: str, protected: list[str]) -> str | None:
    """The protected path ``arg`` names (as a path relative to ``base``, as an absolute
    path, or inside a longer argument such as ``--file=/path``), or None."""
    candidates = [arg, *(part for part in arg.split("=")[1:] if part)]
    for text in candidates:
        target = os.path.normpath(os.path.join(base, os.path.expanduser(text)))
        for p in protected:
            if is_within(target, p) or p in text:
                return p
    return None


def command_problems(catalog: Catalog, settings: Settings) -> list[str]:
    """Every ``command:`` source the settings refuse (issue 23, finding 1): all of them
    while catalog_commands is off; with ``allow``, a program that is not a relative path
    inside the catalog's folder, and arguments naming the state folder, the sandbox's folder
    or the custody file."""
    commands = list(_sources(catalog, "command"))
    if not commands:
        return []
    problems: list[str] = []
    if settings.catalog_commands != "allow":
        for loc, _path, _key, src in commands:
            problems.append(
                f"{catalog.where(loc)}: command source {argv_text(src.command or [])} is "
                "refused: catalog commands are off (the default); the setting "
                "catalog_commands: allow (INVOKE_BOOTSTRAP_CATALOG_COMMANDS=allow) runs "
                "programs inside the catalog's folder (docs/explanation/catalog.md)"
            )
        return problems
    base = file_roots(settings.catalog, ())[0]
    protected = protected_paths(settings)
    for loc, _path, _key, src in commands:
        argv = src.command or []
        problem = program_problem(argv[0]) if argv else "names no program"
        if problem is not None:
            problems.append(f"{catalog.where(loc)}: {problem}")
        for arg in argv:
            hit = _names_protected(arg, base, protected)
            if hit is not None:
                problems.append(
                    f"{catalog.where(loc)}: argument {show(arg)} names {hit}, the bootstrap's "
                    "state, sandbox or custody; a command source may not be pointed at them"
                )
    return problems


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
        if svc.namespace == s.populate_namespace:
            problems.append(
                f"{catalog.where(('services', i, 'namespace'))}: namespace {svc.namespace!r} is "
                "the populate Job's own (setting populate_namespace): its ServiceAccount's role "
                f"writes every path of the catalog and its Secret {s.populate_env_secret!r} "
                "holds the env: values; put the service in a namespace of its own"
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
    reserved_secrets[(s.populate_namespace, s.populate_env_secret)] = (
        "the populate Job's environment Secret (settings populate_namespace, "
        "populate_env_secret), which holds the env: values"
    )
    custody_prefix = f"{s.custody_secret}-"
    for i, loc, namespace, name in _destinations(catalog):
        what = reserved_secrets.get((namespace, name))
        if what is None and namespace == s.custody_namespace and name.startswith(custody_prefix):
            what = (
                f"a custody Secret's name (custody_secret {s.custody_secret!r} followed by "
                "'-': the bootstrap-admin credential's '-admin', the root token's record "
                "'-root-revoked', the copies set aside '-replaced-...')"
            )
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
    problems += command_problems(catalog, settings)
    return problems


def check_reserved(catalog: Catalog, settings: Settings) -> None:
    """Raise :class:`CatalogError` (exit 2) listing every :func:`reserved_problems`."""
    problems = reserved_problems(catalog, settings)
    if problems:
        raise CatalogError(str(settings.catalog), problems)
