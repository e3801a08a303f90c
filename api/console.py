"""The CLI's two consoles: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

# Tables stay readable when piped (rich would otherwise squeeze them into 80 columns).
console = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)
