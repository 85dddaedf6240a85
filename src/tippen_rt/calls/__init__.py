"""Video calls: the invitation a call sends to its user's own page, and the answer.

The :class:`CallBoard` keeps the invitations waiting for an answer; the
tracker's second script (``tippen-invite.js``) fetches them through the
ingest endpoint while its user is flagged (docs/support.md).
"""

from ._board import ANSWERS, CallBoard, Invitation, InvitationStatus

__all__ = ["ANSWERS", "CallBoard", "Invitation", "InvitationStatus"]
