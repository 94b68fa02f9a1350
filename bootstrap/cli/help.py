"""Every task's flag help, by task, as ``invoke --help TASK`` and the reference show it."""

from __future__ import annotations

CATALOG = "service catalog (default from invoke.yaml)"

PHASES = {
    "catalog": CATALOG,
    "only": "run only this phase (repeatable)",
    "start": "start from this phase",
    "skip": "skip this phase (repeatable)",
    "report": "write the JSON report here (default .bootstrap/reports/)",
    "prune": "also remove managed objects that left the catalog (never unmanaged ones)",
    "rotate": "populate: replace real values from their sources (regenerate generated ones)",
    "skip_quiet_check": "verify: do not watch the restart targets for one refresh period after "
    "a hand-over (the proof that the operator restarts nothing while Vault is unchanged)",
}

RENDER = {
    "catalog": CATALOG,
    "out": "directory to (re)write: vault/policies, vault/roles, manifests/<ns> (the sync "
    "engine's objects: VSO's, or with sync_engine eso ESO's)",
    "populate_job": "also write populate-job/: the populate step as a Kubernetes Job, "
    "its Vault policy and role (default: the setting populate_job)",
    "vault_addr": "Vault's address as the Job's pod (and, with sync_engine eso, ESO's "
    "SecretStores) reach it (default: the setting vault_connection_address)",
    "image": "the product's image for the Job (default: the one images.build makes)",
}

CHECK = {
    "catalog": CATALOG,
    "rendered": "check a directory written by 'invoke render' (maybe edited by hand) "
    "against what render writes for the catalog",
    "vault_addr": "with --rendered: the Vault address the populate Job was rendered with "
    "(default: the setting vault_connection_address)",
    "image": "with --rendered: the image the populate Job was rendered with (default: "
    "the one images.build makes)",
}

STATUS = {"catalog": CATALOG, "json": "print JSON instead of a table"}

ROTATION = {"secret": "SERVICE/SECRET of the catalog", "catalog": "service catalog"}

DR_SNAPSHOT = {
    "out": "the snapshot file to write (mode 0600); its manifest goes to OUT.manifest.json",
    "catalog": "service catalog (its name goes into the manifest)",
    "age_recipient": "encrypt to this age (age1...) or SSH public key (repeatable)",
    "force": "replace OUT if it exists",
    "plan": "say what would be written, change nothing",
}

DR_RESTORE = {
    "snapshot": "the snapshot file dr.snapshot wrote (its manifest beside it)",
    "keys": "a copy of the original cluster's custody record (vault-init.json, its "
    "vault-init.admin.json beside it); default: the target's custody already holds it",
    "catalog": CATALOG,
    "age_identity": "age identity file for an encrypted snapshot (repeatable)",
    "force": "restore over a Vault holding other data (says what it destroys; its root "
    "token in VAULT_TOKEN), and set aside another init record in custody; never skips a "
    "check of the snapshot, its server kind or version, or the keys",
    "plan": "say what would be restored, replaced and re-pointed; change nothing",
    "report": "write the JSON report here (default .bootstrap/reports/dr-restore.json)",
}

MIGRATE_DISCOVER = {
    "namespace": "search only this namespace (repeatable; default: all but Kubernetes' own)",
    "out": "write a draft catalog fragment here (keys' names only, never values)",
    "catalog": "the catalog the fragment goes into (its services keep their names)",
}

MIGRATE_NAMESPACE = {
    "ns": "the namespace to move (repeatable)",
    "all": "every namespace of the catalog, one after the other",
    "catalog": "the catalog, with the migrate.discover fragment merged in",
    "force": "replace other real values Vault holds at a mapped path",
    "plan": "show each step per namespace; change nothing",
    "allow_type": "also move Secrets of this non-Opaque type, e.g. kubernetes.io/tls "
    "(repeatable; never kubernetes.io/service-account-token)",
}

MIGRATE_ROLLBACK = {
    "ns": "the namespace to put back (repeatable)",
    "catalog": "the catalog the migration used",
    "plan": "show what it would put back; change nothing",
}

VALIDATE = {"catalog": CATALOG}

INSTALL = {
    "name": "install only this tool (repeatable)",
    "node": "also what the node sandbox and cluster.create need: kubelet, kube-scheduler, "
    "kube-proxy, CoreDNS, pause, the Debian packages' programs, and the images",
    "all": "every tool: both operators and the node's, and the images (what the tests use)",
    "peers": "also build the vault-config benchmark's peers (terraform-provider-vault, "
    "bank-vaults) from ../shared/vendor/; minutes the first time, about 1.4 GB of Go modules",
}

IMAGES_BUILD = {
    "name": "build only this image (repeatable): openbao, vault-secrets-operator (both "
    "versions) or vault-secrets-operator:1.4.1 / :0.1.0, demo, bootstrap"
}

DOCS = {
    "check": "do not write the generated pages: fail when one differs from the code",
    "out": "where the site goes",
}

TEST = {
    "pytest_args": "extra arguments for pytest, e.g. '-k catalog -x'",
    "workers": "pytest-xdist workers, each with a sandbox of its own (0: one process)",
    "fast": "the edit loop's tier: lint, unit tests and one end-to-end bootstrap",
    "repeat": "hunt flakes: the integration suite N times in random orders, with "
    "per-test pass counts, the seeds of failures and the slowest tests",
    "drills": "the long drills alone (a busy machine, a lost leader), not the suite",
}

SANDBOX_UP = {
    "ha": "three OpenBao nodes in one raft cluster instead of one",
    "node": "the node sandbox: containerd, runc, kubelet and kube-scheduler too, one Node "
    "(as root; setting bootstrap.sandbox_node)",
}

SANDBOX_STATUS = {"json": "print JSON instead of a table"}

SANDBOX_DOWN = {"keep": "keep the state directory (data, logs, kubeconfig)"}

CLUSTER_CREATE = {
    "catalog": CATALOG,
    "replicas": "OpenBao replicas: 1 or 3",
    "kind": "on a kind cluster (made if absent; needs kind and Docker) instead of the node sandbox",
}

CLUSTER_DELETE = {
    "kind": "delete the kind cluster cluster.create --kind made (setting kind_cluster)"
}
