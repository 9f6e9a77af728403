"""Bounded poll-and-assert, for the rare wait that has no handle to await."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starter.stack import Stack
from tests.factories import customer, order
from workflows import Outcome

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0) -> T:
    """Call ``probe`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(0.05)


async def alimtalk_waiting_for_receipt(stack: Stack) -> tuple[str, dict[str, Any]]:
    """Start a journey whose AlimTalk gets no receipt from the sandbox (…0002); once the journey
    has it as sent, return the journey's id and the sandbox's record of that AlimTalk."""
    c = customer("010-0000-0002")
    handle = await stack.journeys.order_paid(order(c), c)

    async def sent() -> bool:
        return any(e.outcome is Outcome.SENT for e in await stack.journeys.timeline(handle.id))

    await eventually(sent)
    [message] = [m for m in stack.sandbox.messages.values() if m["channel"] == "alimtalk"]
    return handle.id, message
