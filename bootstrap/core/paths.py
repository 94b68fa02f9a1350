"""Where the repository's own files are, from one anchor (the package moved once; paths
counted from each module's own file did not follow)."""

from __future__ import annotations

from pathlib import Path

#: The repository (or unpacked source tree): holds bootstrap/, terraform/, placeholders/.
REPO = Path(__file__).resolve().parents[2]
#: The placeholder module the placeholders phase applies.
TERRAFORM_MODULE = REPO / "terraform"
#: Third-party source archives, beside the repository (``../shared/vendor``).
VENDOR = REPO.parent / "shared" / "vendor"
