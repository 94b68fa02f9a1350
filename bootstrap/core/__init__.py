"""Cross-cutting ground: errors, settings, waits, failpoints, file output. Imports nothing else
of the product."""
