"""Shared test configuration.

Hypothesis runs 2,000 examples per property in CI (``HYPOTHESIS_PROFILE=ci``, set by the test command when
``CI`` is set) and 200 locally, so a developer's loop stays quick while CI digs deep.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REQUIRE_SERVICES = os.environ.get("WCNOTIFY_REQUIRE_SERVICES") == "1"
