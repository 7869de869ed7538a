"""The chaos test reuses the market integration helpers (agent_kit) from their folder."""

from __future__ import annotations

import sys
from pathlib import Path

_MARKET = Path(__file__).resolve().parents[1] / "integration" / "market"
if str(_MARKET) not in sys.path:
    sys.path.insert(0, str(_MARKET))
