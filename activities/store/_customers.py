"""Customer profiles: upserts, consent notices, dead addresses."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.store._base import (
    StoreBase,
    _customers,
    _now,
)

# The statements of every journey's profile read and every order's profile save, built once (see
# _messages.py): values go in as bind parameters.
_c = _customers.c
_BY_ID = _c.customer_id == bindparam("p_customer_id")
_PROFILE = select(_c.profile, _c.dead_addresses, _c.consent_notices).where(_BY_ID)
_PROFILE_LOCKED = _PROFILE.with_for_update()
_NEW_CUSTOMER = insert(_customers)
_SAVE_CUSTOMER = update(_customers).where(_BY_ID)  # SET: the columns the call gives


class CustomerStore(StoreBase):
    """Customer profiles."""

    # customers ------------------------------------------------------------------------------

    async def upsert_customer(self, profile: CustomerProfile) -> bool:
        """Create or replace a profile; dead addresses still in use stay dead.

        Consent notices stay for consents that have not been given again since.

        Returns:
            Whether the customer's ad consents changed (or the customer is new with some).
        """
        data = profile.model_dump(mode="json", exclude={"dead_addresses", "consent_notices"})
        now = _now()
        key = {"p_customer_id": profile.customer_id}
        for _ in range(3):
            try:
                async with self._lane.write() as conn:
                    rows = await conn.execute(_PROFILE_LOCKED, key)
                    row = rows[0] if rows else None
                    if row is None:
                        await conn.execute(
                            _NEW_CUSTOMER,
                            {
                                "customer_id": profile.customer_id,
                                "profile": data,
                                "dead_addresses": [],
                                "consent_notices": {},
                                "created_at": now,
                                "updated_at": now,
                            },
                        )
                        return bool(profile.marketing_consent)
                    addresses = {profile.phone, profile.email, *profile.push_tokens, *profile.addresses.values()}
                    consents = {c.value: t for c, t in profile.marketing_consent.items()}
                    notices = {
                        channel: at
                        for channel, at in (row.consent_notices or {}).items()
                        if channel in consents and consents[channel] <= datetime.fromisoformat(at)
                    }
                    await conn.execute(
                        _SAVE_CUSTOMER,
                        {
                            **key,
                            "profile": data,
                            "dead_addresses": [a for a in row.dead_addresses if a in addresses],
                            "consent_notices": notices,
                            "updated_at": now,
                        },
                    )
                    return bool((row.profile or {}).get("marketing_consent") != data["marketing_consent"])
            except IntegrityError:  # a concurrent insert (another process) won: update theirs
                continue
        return False

    async def record_consent_notice(self, customer_id: str, channel: str, at: datetime) -> None:
        """The biennial consent notice for ``channel`` reached the customer at ``at`` (journey time)."""
        key = _customers.c.customer_id == customer_id
        async with self._write() as conn:
            row = (await conn.execute(select(_customers.c.consent_notices).where(key).with_for_update())).first()
            if row is None:
                return
            notices = {**(row.consent_notices or {}), channel: at.astimezone(UTC).isoformat()}
            await conn.execute(update(_customers).where(key).values(consent_notices=notices, updated_at=_now()))

    async def get_customer(self, customer_id: str) -> CustomerProfile | None:
        """The current profile, or None."""
        row = await self._lane.read(_PROFILE, {"p_customer_id": customer_id})
        if row is None:
            return None
        return CustomerProfile.model_validate(
            {**row.profile, "dead_addresses": row.dead_addresses, "consent_notices": row.consent_notices or {}}
        )

    @staticmethod
    async def _locked_dead_addresses(conn: AsyncConnection, customer_id: str) -> list[str] | None:
        """The customer's dead addresses, row locked for this transaction; None if no such customer."""
        return (
            await conn.execute(
                select(_customers.c.dead_addresses).where(_customers.c.customer_id == customer_id).with_for_update()
            )
        ).scalar_one_or_none()

    async def mark_address_dead(self, customer_id: str, address: str) -> None:
        """Remember that ``address`` no longer reaches the customer (hard bounce, dead token)."""
        key = _customers.c.customer_id == customer_id
        async with self._write() as conn:
            dead = await self._locked_dead_addresses(conn, customer_id)
            if dead is not None and address not in dead:
                await conn.execute(
                    update(_customers).where(key).values(dead_addresses=[*dead, address], updated_at=_now())
                )
