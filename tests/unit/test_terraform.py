from __future__ import annotations

from bootstrap.clients.terraform import error_summary

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
