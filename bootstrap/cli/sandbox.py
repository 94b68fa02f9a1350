"""The sandbox and local-cluster tasks: sandbox.up, .status, .env, .down; cluster.create and
cluster.delete."""

from __future__ import annotations

import json
import time

from bootstrap.cli.common import console, e, load, say, table
from bootstrap.core.errors import BootstrapError
from bootstrap.model.settings import Settings


def _exports(env: dict[str, str]) -> None:
    for key, value in env.items():
        console.print(f"export {key}={e(value)}", highlight=False)


def up(s: Settings, ha: bool, node: bool) -> None:
    from bootstrap import sandbox

    state = sandbox.up(
        s.sandbox_dir,
        s.tools_dir,
        ha=ha,
        with_node=node or s.sandbox_node,
        timeout=s.wait_timeout,
        progress=say("sandbox"),
        operator=sandbox.OperatorOptions.of(s),
    )
    _exports(state.env())


def status(s: Settings, as_json: bool) -> None:
    from bootstrap import sandbox

    st = sandbox.status(s.sandbox_dir)
    if as_json:
        console.print_json(json.dumps(st.as_dict()))
        return
    if not st.components:
        console.print(f"no sandbox in {e(st.directory)}")
        return
    table(
        f"sandbox {e(st.directory)}"
        + (" (HA)" if st.ha else "")
        + f", Vault Secrets Operator v{e(st.operator_version)} ({e(st.operator_licence)})",
        ("component", "pid", "state", "detail"),
        (
            (e(c.name), str(c.pid or ""), "running" if c.running else "stopped", e(c.detail))
            for c in st.components
        ),
    )
    if st.node is not None:
        n = st.node
        console.print(
            f"Node {e(n.name)} {e(n.address)} (pods {e(n.pod_cidr)}, network "
            f"namespace {e(n.netns)}{'' if n.netns_exists else ', missing'}): "
            f"Ready={e(n.ready)} {e(n.reason)}",
            highlight=False,
        )
    console.print(f"KUBECONFIG={e(st.kubeconfig)}")


def env(s: Settings) -> None:
    from bootstrap import sandbox

    state = sandbox.SandboxState.load(s.sandbox_dir.resolve())
    if state is None:
        raise BootstrapError(f"no sandbox in {s.sandbox_dir}; 'invoke sandbox.up' starts one")
    _exports(state.env())


def down(s: Settings, keep: bool) -> None:
    from bootstrap import sandbox

    stopped = sandbox.down(s.sandbox_dir, keep=keep)
    console.print(
        f"stopped: {e(', '.join(stopped)) or 'nothing was running'}"
        + ("" if keep else f"; removed {e(s.sandbox_dir)}")
    )


def cluster_create(s: Settings, replicas: int, kind: bool) -> None:
    from bootstrap.commands import cluster

    cat = load(s)
    started = time.monotonic()
    if kind:
        from bootstrap.commands import kind as kind_cluster

        done = kind_cluster.create(s, cat, s.kind_cluster, replicas, say=say("cluster"))
    else:
        done = cluster.create(s, cat, replicas, say=say("cluster"))
    pods = ", ".join(f"{n} {ip}" for n, ip in sorted(done.openbao_pods.items()))
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in done.seconds.items())
    console.print(
        f"cluster created in {time.monotonic() - started:.1f}s ({steps}): "
        f"{done.applied} objects, OpenBao pods {e(pods)}, the operator {e(done.operator)} "
        f"reaching Vault at {e(done.vault_service)} (OpenBao's Service)",
        highlight=False,
    )
    console.print(f"next: . {e(str(done.env_file))} && invoke bootstrap", highlight=False)


def cluster_delete(s: Settings, kind: bool) -> None:
    from bootstrap.commands import cluster

    if kind:
        from bootstrap.commands import kind as kind_cluster

        kind_cluster.delete(s, s.kind_cluster, say=say("cluster"))
        console.print(f"deleted kind cluster {e(s.kind_cluster)}")
        return
    gone = cluster.delete(s, say=say("cluster"))
    console.print(f"deleted {len(gone)} namespace(s): {e(', '.join(gone)) or 'none'}")
