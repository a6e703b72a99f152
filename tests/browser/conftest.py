"""Browser tests reuse the web tests' in-memory control (tests/http/web_support.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
