"""The command line's library side: one function per task, taking the typed settings and the
task's flags, doing the work through the layers below and printing its result.

``tasks.py`` only declares the tasks (names, flags, help) and calls these; the invoke
Context stops at :mod:`bootstrap.cli.common`, which turns its configuration into
:class:`~bootstrap.model.settings.Settings` and product errors into exit codes.
"""
