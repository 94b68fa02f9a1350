"""Tasks on the catalog alone (nothing contacted): render, check, catalog.validate."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.cli.common import console, e, load, print_commands, table
from bootstrap.core.errors import CheckFailed, UsageError
from bootstrap.core.output import write_tree
from bootstrap.model.catalog import Catalog
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.render import render_tree
from bootstrap.model.settings import Settings

if TYPE_CHECKING:
    from bootstrap.model.populate_job import JobOptions

#: catalog.validate prints its table for catalogs of at most this many services.
VALIDATE_TABLE_ROWS = 500


def render(
    s: Settings, out: str, populate_job: bool, vault_addr: str | None, image: str | None
) -> None:
    cat = load(s)
    files = render_tree(cat)
    if s.sync_engine == "eso":
        files = {
            **_without_vso(files),
            **eso_manifests(cat, vault_addr or s.vault_connection_address),
        }
    secret_command = None
    if populate_job or s.populate_job:
        from bootstrap.model.populate_job import job_notes

        job_files, secret_command = populate_job_files(s, cat, vault_addr, image)
        files.update(job_files)
        notes = job_notes(cat)
        if not s.populate_job:
            notes.insert(
                0,
                "vault-config writes the Job's policy and role (populate-job/vault/) only "
                "with the setting populate_job: true",
            )
        for note in notes:
            console.print(f"note (populate Job): {e(note)}")
    write_tree(Path(out), files)
    console.print(
        f"wrote {len(files)} files to {e(out)}/ "
        f"({len(cat.services)} services, {len(cat.namespaces)} namespaces)"
    )
    if secret_command:
        console.print(
            "the populate Job reads the files of the catalog's file: sources from a Secret "
            "you make (never in the rendered tree); make it with:",
            highlight=False,
        )
        console.print(f"    {e(secret_command)}", highlight=False, soft_wrap=True)


def _without_vso(files: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in files.items() if not k.startswith("manifests/")}


def eso_manifests(cat: Catalog, vault_addr: str | None) -> dict[str, str]:
    """With the sync engine eso, ``manifests/<ns>/``: each service's ServiceAccount and
    SecretStore (Vault at ``vault_addr``, as ESO's pod reaches it) and an ExternalSecret per
    destination Secret (Merge: the placeholders phase makes every destination first)."""
    from bootstrap.model import eso
    from bootstrap.model.render import dump_yaml_docs

    if not vault_addr:
        raise UsageError(
            "render with sync_engine eso needs Vault's address as ESO reaches it, for the "
            "SecretStores: --vault-addr, or the setting vault_connection_address"
        )
    files: dict[str, str] = {}
    for ns, docs in eso.render_catalog(cat, vault_addr).items():
        for doc in docs:
            files[f"manifests/{ns}/{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"] = (
                dump_yaml_docs([doc])
            )
    return files


def populate_job_files(
    s: Settings, cat: Catalog, vault_addr: str | None, image: str | None
) -> tuple[dict[str, str], str | None]:
    """populate-job/, and the command that makes the Secret of the files the catalog's
    ``file:`` sources read (issue 23, finding 3: their contents never go into the tree; they
    are not even read here, only found)."""
    from bootstrap.model import populate_job as pj

    options = _populate_job_options(s, vault_addr, image)
    names, problems = pj.catalog_files(cat)
    base = s.catalog.resolve().parent
    paths: dict[str, str] = {}
    size = 0
    for rel in names:
        f = base / rel
        try:
            st = f.stat()
        except OSError as exc:
            problems.append(
                f"file {rel}: cannot find it for the Job's files Secret: {exc.strerror}"
            )
            continue
        if not f.is_file():
            problems.append(f"file {rel}: not a regular file")
            continue
        size += st.st_size
        # as the user will type it: relative to the current folder when below it
        try:
            paths[rel] = str(f.relative_to(Path.cwd().resolve()))
        except ValueError:
            paths[rel] = str(f)
    if size > pj.CONFIGMAP_MAX_BYTES:
        problems.append(
            f"the files total {size} bytes, over a Secret's limit of "
            f"{pj.CONFIGMAP_MAX_BYTES} bytes (1 MiB)"
        )
    if problems:
        raise UsageError(
            "cannot render the populate Job:\n" + "\n".join(f"  {p}" for p in problems)
        )
    try:
        files = pj.render_files(cat, options, s.catalog.read_text(encoding="utf-8"), names)
    except ValueError as exc:
        raise UsageError(f"cannot render the populate Job: {exc}") from None
    argv = pj.files_secret_command(options, paths)
    return files, (pj.shell_line(argv) if argv else None)


def _populate_job_options(s: Settings, vault_addr: str | None, image: str | None) -> JobOptions:
    """The Job's options as render takes them: Vault's address (the flag or the setting
    vault_connection_address) and the product's image (the flag or the one images.build
    makes)."""
    from bootstrap.model import populate_job as pj
    from bootstrap.tooling import images

    addr = vault_addr or s.vault_connection_address
    if not addr:
        raise UsageError(
            "the populate Job needs Vault's address as its pod reaches it: --vault-addr or "
            "the setting vault_connection_address"
        )
    return pj.JobOptions(
        access=pj.PopulateAccess(s.populate_namespace, s.populate_service_account),
        image=image or images.references().bootstrap,
        vault_addr=addr,
        env_secret=s.populate_env_secret,
    )


def check(s: Settings, rendered: str | None, vault_addr: str | None, image: str | None) -> None:
    """The static check, of the catalog or of a rendered tree against it."""
    # one burst of allocations that all live until the process ends: no cyclic collection is
    # worth its scan (the one after a pause scanned every object again: 0.2 s at 10,000
    # services), and at the end they are set aside from the collector for good
    gc.disable()
    try:
        _check(s, rendered, vault_addr, image)
    finally:
        gc.freeze()
        gc.enable()


def _check(s: Settings, rendered: str | None, vault_addr: str | None, image: str | None) -> None:
    cat = load(s)
    if rendered:
        from bootstrap.model.check_tree import POPULATE_DIR, Reference, check_tree

        root = Path(rendered)
        expected = render_tree(cat)
        server = ""
        if s.sync_engine == "eso":  # the tree 'invoke render' writes with ESO's objects
            server = vault_addr or s.vault_connection_address or ""
            expected = {**_without_vso(expected), **eso_manifests(cat, server)}
        if (root / POPULATE_DIR).exists() or s.populate_job:
            expected.update(populate_job_files(s, cat, vault_addr, image)[0])
        ref = Reference(expected, s.operator_namespace, s.vault_connection_address, server)
        result = check_tree(root, ref)
        source = f"{rendered} (against {s.catalog})"
    else:
        # the objects the bootstrap applies for the sync engine; ESO's stores name Vault as
        # the operator phase does (vault_connection_address, else the product's own address)
        server = vault_addr or s.vault_connection_address or next(iter(s.vault_addrs), "")
        result = run_check(rendered_from_catalog(cat, s.sync_engine, server))
        source = str(s.catalog)
    if not result.ok:
        raise CheckFailed(result.findings)
    synced = (
        f"{result.external_secrets} ExternalSecrets"
        if result.external_secrets and not result.static_secrets
        else f"{result.static_secrets} VaultStaticSecrets"
    )
    console.print(
        f"check passed for {e(source)}: {synced} readable under their roles, "
        f"{result.roles} roles, {result.pairs} service pairs isolated"
    )
    if not rendered:
        print_commands(cat)


def validate(s: Settings) -> None:
    cat = load(s)
    if len(cat.services) > VALIDATE_TABLE_ROWS:
        # a table of thousands of rows takes rich seconds to lay out, and nobody reads it
        console.print(
            f"{e(s.catalog)}: valid: {len(cat.services)} services in {len(cat.namespaces)} "
            f"namespaces, {sum(len(x.secrets) for x in cat.services)} secrets, "
            f"{sum(len(x.reads) for x in cat.services)} reads (no table above "
            f"{VALIDATE_TABLE_ROWS} services)",
            highlight=False,
        )
        return
    table(
        f"{e(s.catalog)}: valid",
        ("service", "namespace", "secrets", "reads", "restart"),
        (
            (
                e(svc.name),
                e(svc.namespace),
                e(", ".join(svc.secrets)),
                e(", ".join(r.path for r in svc.reads)),
                e(", ".join(f"{t.kind}/{t.name}" for t in svc.restart)),
            )
            for svc in cat.services
        ),
    )
