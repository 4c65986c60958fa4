"""Shared fixtures. Keep this small: helpers that only one test file needs live in that file."""

from pathlib import Path

import pytest

# The real tweets and price files (see ../shared/data/README.md); absent on some machines.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
