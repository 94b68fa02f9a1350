from __future__ import annotations

from bootstrap.clients.terraform import MODULE_DIR, error_summary
from tests.conftest import ROOT

STDERR = """
Error: secrets "config" is forbidden: unable to create new content in namespace x because it is being terminated

  with kubernetes_secret.placeholder["x/config"],
  on main.tf line 59, in resource "kubernetes_secret" "placeholder":
  59: resource "kubernetes_secret" "placeholder" {

Error: Unauthorized

  with kubernetes_namespace.this["y"],
  on main.tf line 48, in resource "kubernetes_namespace" "this":
"""


def test_error_summary_names_resource_and_message() -> None:
    summary = error_summary(STDERR)
    assert summary.startswith('kubernetes_secret.placeholder["x/config"]: secrets "config" is')
    assert "being terminated" in summary
    assert 'kubernetes_namespace.this["y"]: Unauthorized' in summary


def test_error_summary_without_blocks_keeps_the_tail() -> None:
    assert error_summary("something odd happened") == "something odd happened"


def test_the_module_copied_into_each_workspace_is_the_repositorys() -> None:
    # an empty module plans nothing: the placeholders phase would say "no change" and make none
    assert MODULE_DIR == ROOT / "terraform"
    assert (MODULE_DIR / "main.tf").is_file()
