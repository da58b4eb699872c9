"""Where the leading scheduler's placement policy lives:
`/sfmesh/v1/scheduler/policy`, a `SchedulerPolicyRecord` each scheduler
writes as its term as leader starts (its overcommit ratio, the RAM kept for
the host, the disk kept free). The api reads it to answer
`GET /admin/resources` in the scheduler's terms."""

from __future__ import annotations

from services.common.store import key

POLICY_KEY = key("scheduler", "policy")
"""The key of the policy record."""
