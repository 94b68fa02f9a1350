"""The populate Job, pure parts: its Vault policy and role (what vault-config writes with the
setting populate_job), its manifests (``invoke render --populate-job``), the catalog's folder
in a ConfigMap, and the Job program's confinement check (with a fake client)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.clients.vault import VaultRequestError
from bootstrap.model import conventions as conv
from bootstrap.model import populate_job as pj
from bootstrap.model import vaultplan
from bootstrap.model.catalog import load_catalog, parse_catalog
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.domain import kv_secrets
from bootstrap.model.policy import capabilities, parse_policy
from bootstrap.model.render import render_tree, vault_acl
from bootstrap.model.settings import Settings, populate_access
from tests.conftest import EXAMPLE

ACCESS = pj.PopulateAccess("bootstrap-populate", "bootstrap-populate")
OPTIONS = pj.JobOptions(
    access=ACCESS,
    image="localhost/cluster-secrets-bootstrap/bootstrap:0.1.0",
    vault_addr="http://vault.vault.svc:8200",
    env_secret="bootstrap-populate-env",
)


def _catalog() -> Any:
    return load_catalog(EXAMPLE)


def test_the_policy_grants_exactly_the_catalogs_paths() -> None:
    cat = _catalog()
    text = pj.render_populate_policy(cat)
    assert conv.is_managed_policy(text, cat.name)
    rules = parse_policy(text, pj.POPULATE_ROLE)
    paths = sorted({p for p, _ in kv_secrets(cat)})
    assert sorted(r.path for r in rules) == [f"secret/data/{p}" for p in paths]
    assert all(not r.is_glob and not r.segment_wildcards for r in rules)
    for p in paths:
        assert capabilities(rules, f"secret/data/{p}") == {"create", "read", "update"}
        # nothing on the other KV APIs of its own paths
        for api in ("metadata", "delete", "undelete", "destroy", "subkeys"):
            assert capabilities(rules, f"secret/{api}/{p}") == frozenset()
    for other in (
        "secret/metadata/",  # no listing
        "secret/metadata/webapp/",
        "secret/data/webapp/other",  # an undeclared secret of a declared service
        "secret/data/someone-else/config",
        "secret/data/shared/undeclared",
        "sys/policies/acl/bootstrap-populate",
        "auth/kubernetes/role/bootstrap-populate",
    ):
        assert capabilities(rules, other) == frozenset(), other


def test_the_role_binds_only_the_jobs_service_account() -> None:
    cat = _catalog()
    role = pj.render_populate_role(cat, pj.PopulateAccess("pop-ns", "pop-sa"))
    assert role == {
        "bound_service_account_names": ["pop-sa"],
        "bound_service_account_namespaces": ["pop-ns"],
        "token_policies": [pj.POPULATE_ROLE],
        "token_ttl": 900,
        "audience": cat.defaults.audience,
    }


def test_vault_config_writes_them_only_when_the_setting_asks() -> None:
    cat = _catalog()
    assert populate_access(Settings()) is None
    assert pj.POPULATE_ROLE not in vault_acl(cat).policies
    assert pj.POPULATE_ROLE not in vault_acl(cat).roles
    access = populate_access(Settings(populate_job=True, populate_namespace="pj"))
    assert access == pj.PopulateAccess("pj", "bootstrap-populate")
    acl = vault_acl(cat, access)
    assert acl.policies[pj.POPULATE_ROLE] == pj.render_populate_policy(cat)
    assert acl.roles[pj.POPULATE_ROLE]["bound_service_account_namespaces"] == ["pj"]
    want = vaultplan.desired(cat, "https://k", "", "stdout", None, access)
    facts = vaultplan.Facts.parse(
        kv_mount={"type": "kv", "options": {"version": "2"}},
        auth_mount={"type": "kubernetes"},
        auth_config=None,
        policies={},
        roles={},
        audit={"file/": {"type": "file"}},
    )
    targets = {a.target for a in vaultplan.plan(want, facts, prune=False) if a.changes}
    assert {"policy bootstrap-populate", "role bootstrap-populate"} <= targets
    # and a managed role of its name is pruned when the setting is off again
    have = vaultplan.Facts(
        facts.kv_mount,
        facts.auth_mount,
        None,
        {**want.policies},
        {n: vaultplan.Role.of(r) for n, r in want.roles.items()},
        facts.audit,
    )
    off = vaultplan.desired(cat, "https://k", "", "stdout")
    pruned = [a.target for a in vaultplan.plan(off, have, prune=True) if a.verb == "delete"]
    assert pruned == ["role bootstrap-populate", "policy bootstrap-populate"]


def test_the_static_check_and_the_render_tree_are_unchanged() -> None:
    cat = _catalog()
    assert run_check(rendered_from_catalog(cat)).ok
    assert not any("populate" in name for name in render_tree(cat))


def test_a_service_may_not_take_the_populate_name() -> None:
    text = EXAMPLE.read_text().replace("- name: monitoring", "- name: bootstrap-populate")
    with pytest.raises(Exception, match="bootstrap-populate"):
        parse_catalog(text)


def _manifests(cat: Any = None, **kw: Any) -> list[dict[str, Any]]:
    cat = cat or _catalog()
    files = kw.pop("files", ["examples/webapp-flags.json"])
    return pj.render_manifests(cat, kw.pop("options", OPTIONS), "version: 1\n", files)


def test_the_manifests_run_the_job_confined() -> None:
    cat = _catalog()
    ns, sa, cm, job = _manifests(cat)
    assert [d["kind"] for d in (ns, sa, cm, job)] == [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Job",
    ]
    assert ns["metadata"]["name"] == ACCESS.namespace
    assert sa["metadata"] == {**sa["metadata"], "name": ACCESS.service_account}
    assert sa["automountServiceAccountToken"] is False
    spec = job["spec"]
    assert spec["backoffLimit"] == pj.BACKOFF_LIMIT and spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == ACCESS.service_account
    assert pod["automountServiceAccountToken"] is False  # no Kubernetes API token at all
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == OPTIONS.image
    # values only from the user's Secret: no env entries, a secretRef
    assert "env" not in container
    assert container["envFrom"] == [
        {"secretRef": {"name": "bootstrap-populate-env", "optional": True}}
    ]
    args = container["args"]
    assert args[args.index("--vault-addr") + 1] == OPTIONS.vault_addr
    assert args[args.index("--role") + 1] == pj.POPULATE_ROLE
    volumes = {v["name"]: v for v in pod["volumes"]}
    (token,) = volumes["vault-token"]["projected"]["sources"]
    assert token["serviceAccountToken"]["audience"] == cat.defaults.audience
    # the catalog's folder: the ConfigMap's catalog and the user's files Secret, projected
    assert volumes["catalog"]["projected"]["sources"] == [
        {
            "configMap": {
                "name": cm["metadata"]["name"],
                "items": [{"key": "catalog.yaml", "path": "catalog.yaml"}],
            }
        },
        {
            "secret": {
                "name": pj.FILES_SECRET,
                "items": [
                    {"key": "examples.webapp-flags.json", "path": "examples/webapp-flags.json"}
                ],
                "optional": True,
            }
        },
    ]
    assert cm["data"] == {"catalog.yaml": "version: 1\n"}
    assert "binaryData" not in cm


def test_render_is_deterministic_and_adds_only_its_folder() -> None:
    cat = _catalog()
    files = ["examples/webapp-flags.json"]
    one = pj.render_files(cat, OPTIONS, "version: 1\n", files)
    two = pj.render_files(cat, OPTIONS, "version: 1\n", list(files))
    assert one == two
    assert sorted(one) == [
        "populate-job/manifests.yaml",
        "populate-job/vault/policies/bootstrap-populate.hcl",
        "populate-job/vault/roles/bootstrap-populate.json",
    ]
    assert [d["kind"] for d in yaml.safe_load_all(one["populate-job/manifests.yaml"])] == [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Job",
    ]


def test_a_catalog_over_one_mib_is_refused() -> None:
    with pytest.raises(ValueError, match="1 MiB"):
        pj.render_manifests(_catalog(), OPTIONS, "#" * (1024 * 1024 + 1), [])


def test_without_file_sources_the_folder_is_the_configmap_alone() -> None:
    *_rest, job = _manifests(files=[])
    (catalog,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "catalog"]
    assert [list(s) for s in catalog["projected"]["sources"]] == [["configMap"]]
    assert pj.files_secret_command(OPTIONS, {}) is None


def test_file_keys_are_valid_secret_keys_and_distinct() -> None:
    keys = pj.file_keys(["a/b.txt", "a.b.txt", "sp ace/é.bin", "../x", "k.p12"])
    assert keys == {
        "../x": "x",
        "a.b.txt": "a.b.txt",
        "a/b.txt": "a.b.txt-2",
        "k.p12": "k.p12",
        "sp ace/é.bin": "sp_ace._.bin",
    }
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", k) for k in keys.values())


def test_files_the_job_cannot_mount_are_named_with_their_key() -> None:
    cat = parse_catalog(
        "version: 1\nservices:\n  - name: a\n    namespace: a\n    secrets:\n"
        "      s:\n        keys:\n"
        "          inside: {file: sub/../x.txt}\n"
        "          up: {file: ../outside.txt}\n"
        "          abs: {file: /etc/abs.txt}\n"
    )
    names, problems = pj.catalog_files(cat)
    assert names == ["x.txt"]
    assert len(problems) == 2
    assert any(p.startswith("a/s key up: file ../outside.txt") for p in problems)
    assert any(p.startswith("a/s key abs: file /etc/abs.txt") for p in problems)


class _FakeApi:
    def __init__(self, answers: dict[str, int]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    def request(self, method: str, path: str) -> tuple[int, None]:
        self.asked.append((method, path))
        status = self.answers.get(path, 403)
        if status >= 400 and status != 404:
            raise VaultRequestError(f"{method} /v1/{path}: {status}", status)
        return status, None


def test_the_confinement_check_needs_every_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap import populate_job

    api = _FakeApi({})
    assert populate_job.confinement(api, ["other/config"]) == []  # type: ignore[arg-type]
    assert api.asked == [("LIST", "secret/metadata/"), ("GET", "secret/data/other/config")]
    out = capsys.readouterr().out
    assert "GET secret/data/other/config: 403 permission denied" in out
    # a read that is answered (even 404: the policy let it through) fails the check
    api = _FakeApi({"secret/data/other/config": 404, "secret/metadata/": 200})
    wrong = populate_job.confinement(api, ["/other/config/"])  # type: ignore[arg-type]
    assert wrong == [
        "LIST secret/metadata/ answered 200",
        "GET secret/data/other/config answered 404",
    ]


def test_sources_the_job_may_not_run_are_noted_with_their_key() -> None:
    notes = pj.job_notes(_catalog())
    assert notes == [
        "webapp/api-keys key sendgrid: command 'examples/sendgrid-api-key.sh' never runs in the "
        "Job (commands are off there); run populate locally for it"
    ]


def test_a_crash_says_only_its_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrap import populate_job

    def boom(argv: Any) -> int:
        raise RuntimeError("s3cret-in-a-message")

    monkeypatch.delenv("INVOKE_BOOTSTRAP_DEBUG", raising=False)
    monkeypatch.setattr(populate_job, "_main", boom)
    assert populate_job.main([]) == 70
    out = capsys.readouterr().out
    assert "crashed: RuntimeError" in out and "s3cret" not in out


# -- issue 23, finding 3: no file value in the rendered tree -------------------------------

TEXT_VALUE = b"text-file-value-9f2c41d7e0\n"
BINARY_VALUE = bytes(range(256)) + b"binary-file-value-5b8e\xff\x00"


def _forms(raw: bytes) -> list[bytes]:
    """Every way a file's content could show in a text file: as it is, stripped, base64
    (standard and URL-safe, with and without padding), hex, and each line of the text one."""
    b64 = base64.b64encode(raw)
    forms = [raw, raw.strip(), b64, b64.rstrip(b"="), base64.urlsafe_b64encode(raw)]
    forms += [raw.hex().encode(), json.dumps(raw.decode("latin-1")).encode()[1:-1]]
    return [f for f in forms if len(f) >= 8]


def test_render_writes_no_byte_of_a_file_source_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23, finding 3: ``render --populate-job`` wrote ``file:`` values into the
    ConfigMap (binary ones into binaryData), in a tree meant for Git. Now the files come
    from a Secret the user makes with the printed command; the tree names them only."""
    import io

    import tasks
    from tests.unit.test_corpus import context

    stdout = io.StringIO()
    from bootstrap.cli import common

    monkeypatch.setattr(common.console, "file", stdout)
    folder = tmp_path / "cat"
    (folder / "certs").mkdir(parents=True)
    (folder / "flags.txt").write_bytes(TEXT_VALUE)
    (folder / "certs" / "store.p12").write_bytes(BINARY_VALUE)
    catalog = folder / "catalog.yaml"
    catalog.write_text(
        "version: 1\nservices:\n  - name: app\n    namespace: app\n    secrets:\n"
        "      config:\n        keys:\n"
        "          flags: {file: flags.txt}\n"
        "          store: {file: certs/store.p12, encoding: base64}\n"
        "          token: {env: APP_TOKEN}\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "rendered"
    tasks.render(
        context(),
        out=str(out),
        catalog=str(catalog),
        populate_job=True,
        vault_addr="http://vault.vault.svc:8200",
        image="registry.example/bootstrap:1",
    )
    printed = stdout.getvalue()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert out / "populate-job" / "manifests.yaml" in files
    for raw in (TEXT_VALUE, BINARY_VALUE):
        for form in _forms(raw):
            assert form.decode("latin-1") not in printed
            for p in files:
                assert form not in p.read_bytes(), (p, form[:20])
    # the exact command that makes the files Secret, naming the files, never a value
    assert (
        "kubectl -n bootstrap-populate create secret generic bootstrap-populate-files "
        "--from-file=certs.store.p12=cat/certs/store.p12 --from-file=flags.txt=cat/flags.txt"
    ) in printed
    docs = list(yaml.safe_load_all((out / "populate-job" / "manifests.yaml").read_text()))
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert set(cm["data"]) == {"catalog.yaml"} and "binaryData" not in cm
    assert not [d for d in docs if d["kind"] == "Secret"]
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "catalog"]
    secret = volume["projected"]["sources"][1]["secret"]
    assert secret["name"] == pj.FILES_SECRET
    assert secret["items"] == [
        {"key": "certs.store.p12", "path": "certs/store.p12"},
        {"key": "flags.txt", "path": "flags.txt"},
    ]


def test_the_job_reads_the_projected_files_as_the_local_populate_does(tmp_path: Path) -> None:
    """Issue 23, finding 3: the files Secret projected into the catalog's folder as the
    kubelet lays it out (a timestamped folder behind ``..data`` symlinks) gives the Job the
    same values as the local populate reading the files: text as it is, a binary file with
    ``encoding: base64`` base64-encoded."""
    from bootstrap.runtime.sources import read_file

    local = tmp_path / "local"
    (local / "certs").mkdir(parents=True)
    (local / "flags.txt").write_bytes(TEXT_VALUE)
    (local / "certs" / "store.p12").write_bytes(BINARY_VALUE)
    mounted = tmp_path / "mounted"
    stamp = mounted / "..2026_12_05_07_00_00.000000001"
    (stamp / "certs").mkdir(parents=True)
    (stamp / "flags.txt").write_bytes(TEXT_VALUE)  # the Secret's bytes, as kubectl stored them
    (stamp / "certs" / "store.p12").write_bytes(BINARY_VALUE)
    (mounted / "..data").symlink_to(stamp.name)
    (mounted / "flags.txt").symlink_to("..data/flags.txt")
    (mounted / "certs").symlink_to("..data/certs")
    assert read_file("flags.txt", mounted) == read_file("flags.txt", local)
    got = read_file("certs/store.p12", mounted, encoding="base64")
    assert got == read_file("certs/store.p12", local, encoding="base64")
    assert base64.b64decode(got) == BINARY_VALUE
