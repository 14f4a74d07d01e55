"""The whole schema: every domain's tables on one ``Base.metadata``, for migrations and tests."""

from __future__ import annotations

from api.analytics import models as analytics
from api.catalog import models as catalog
from api.commerce import models as commerce
from api.db import Base
from api.identity import models as identity
from api.notifications import models as notifications
from api.realtime import models as realtime
from api.shows import models as shows
from api.webhooks import models as webhooks

DOMAINS = (identity, catalog, shows, commerce, analytics, realtime, webhooks, notifications)

__all__ = ["DOMAINS", "Base"]
