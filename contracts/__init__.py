"""Foreman's contracts: every pydantic model that crosses an activity or workflow boundary.

Pure data only (no I/O), so workflow code can import these freely.
"""

import contracts.continuation  # noqa: E402,F401 - completes GoalRequest (its `resume` field) whichever contract is imported first
