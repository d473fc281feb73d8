"""The audit log: who did what to which record, when, from where.

Written for logins, failed logins, permission denials and reads of sensitive records.  The
detail never holds personal data: ids and reasons only.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from marketplace import logs
from marketplace.tables import AuditEvent

if TYPE_CHECKING:
    from marketplace.auth import Principal

log = logging.getLogger("cloudmarket.audit")


async def record(
    action: str,
    *,
    principal: Principal | None = None,
    user_id: int | None = None,
    target_type: str = "",
    target_id: str | int = "",
    **detail: Any,
) -> None:
    """Append one audit row; the request id and client address come from the request."""
    actor_user = user_id if user_id is not None else (principal.user_id if principal else None)
    actor_client = principal.client_id if principal else None
    await AuditEvent.insert(
        AuditEvent(
            actor_user_id=actor_user,
            actor_client_id=actor_client,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            ip=logs.client_ip.get(),
            request_id=logs.request_id.get(),
            detail=json.dumps(detail, default=str),
        )
    )
    log.info(
        "audit",
        extra={"action": action, "user_id": actor_user, "target": f"{target_type}:{target_id}"},
    )
