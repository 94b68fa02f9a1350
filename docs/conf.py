"""Sphinx configuration of the documentation site (``invoke docs`` builds it).

The reference pages under ``reference/`` (tasks, settings, catalog, exit codes) and
``catalog.schema.json`` are generated from the code by ``bootstrap.tooling.docgen``;
``invoke docs`` writes them and a unit test keeps the committed files equal to the code.
"""

project = "cluster-secrets-bootstrap"
author = "the cluster-secrets-bootstrap team"
copyright = "2026, " + author

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: anchors for headings down to ###, so [text](page.md#a-heading) links resolve
# (and a wrong one is a warning, an error in CI).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Every broken internal reference is a warning; CI builds with -W (warnings are errors).
nitpicky = True
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = "cluster-secrets-bootstrap"
html_extra_path = ["catalog.schema.json"]
html_static_path: list[str] = []
