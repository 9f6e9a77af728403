"""The testing kit (``starter.testing``, pytest plugin ``journeys``): each helper does what it says."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, KitSetupError, Recipients, check_loop
from durable_journeys.starter.testing import journey_kit as kit_on
from durable_journeys.workflows import Outcome
from tests import factories

ORDER = {"amount": 39000, "items": [{"name": "무선 이어폰", "unit_price": 39000}]}


def shopper(phone: str = Recipients.DELIVERS, **extra: object) -> dict[str, object]:
    return {"customer_id": f"c-{uuid.uuid4().hex[:10]}", "name": "하늘", "phone": phone, **extra}


def order_of(c: dict[str, object]) -> dict[str, object]:
    """A new order (ids are unique: the time-skipping server is shared by every test of the session)."""
    return {"order_id": f"o-{uuid.uuid4().hex[:10]}", "customer_id": c["customer_id"], **ORDER}


async def test_sent_lists_step_channel_and_journey_time(journey_kit: JourneyKit) -> None:
    c = shopper()
    async with journey_kit.worker():
        start = await journey_kit.now()
        handle = await journey_kit.journeys.order_paid(order_of(c), c)
        await journey_kit.advance(timedelta(hours=1))
        sent = await journey_kit.sent(workflow_id=handle.id)
        timeline = await journey_kit.timeline(handle.id)
    assert [(m.step, m.channel) for m in sent] == [("payment_complete", Channel.ALIMTALK)]
    assert sent[0].journey_time is not None and timedelta(0) <= sent[0].journey_time - start < timedelta(minutes=1)
    assert sent[0].body is not None and "결제가 완료되었습니다" in sent[0].body
    assert [e.outcome for e in timeline if e.step == "payment_complete"] == [Outcome.SENT, Outcome.DELIVERED]


@pytest.mark.parametrize(
    ("phone", "channels"),
    [
        (Recipients.DELIVERS, [Channel.ALIMTALK]),
        (Recipients.NOT_ON_KAKAO, [Channel.SMS]),
        (Recipients.ALIMTALK_FAILS, [Channel.ALIMTALK, Channel.SMS]),
    ],
)
async def test_the_magic_recipients_do_what_their_names_say(
    journey_kit: JourneyKit, phone: str, channels: list[Channel]
) -> None:
    c = shopper(phone)
    async with journey_kit.worker():
        handle = await journey_kit.journeys.order_paid(order_of(c), c)
        await journey_kit.advance(timedelta(hours=1))
        sent = await journey_kit.sent(workflow_id=handle.id)
    assert [m.channel for m in sent] == channels


@pytest.mark.parametrize("report", ["deliver", "fail"])
async def test_deliver_and_fail_report_a_receipt_the_journey_acts_on(journey_kit: JourneyKit, report: str) -> None:
    c = shopper(Recipients.NO_KAKAO_RECEIPT)  # AlimTalk accepted; no receipt unless the test reports one
    async with journey_kit.worker():
        handle = await journey_kit.journeys.order_paid(order_of(c), c)
        await journey_kit.advance(timedelta(minutes=1))
        (alimtalk,) = await journey_kit.sent(workflow_id=handle.id)
        outcome = await (
            journey_kit.deliver(alimtalk) if report == "deliver" else journey_kit.fail(alimtalk, "NO_KAKAO")
        )
        await journey_kit.advance(timedelta(minutes=1))
        sent = await journey_kit.sent(workflow_id=handle.id)
        timeline = await journey_kit.timeline(handle.id)
    assert outcome == "signalled"
    step = [(e.outcome, e.channel) for e in timeline if e.step == "payment_complete"]
    if report == "deliver":
        assert step[-1] == (Outcome.DELIVERED, Channel.ALIMTALK) and [m.channel for m in sent] == [Channel.ALIMTALK]
    else:
        assert (Outcome.FAILED, Channel.ALIMTALK) in step and [m.channel for m in sent] == [
            Channel.ALIMTALK,
            Channel.SMS,
        ]


async def test_emit_reaches_the_journey_that_listens(journey_kit: JourneyKit) -> None:
    consented = factories.clock - timedelta(days=30)
    c = shopper(
        push_tokens=["device-1"], app_installed=True, marketing_consent={"push": consented, "brand_message": consented}
    )
    async with journey_kit.worker():
        handle = await journey_kit.journeys.cart_updated(
            c["customer_id"], {"items": [{"name": "양말", "unit_price": 5000}]}, customer=c
        )
        await journey_kit.advance(timedelta(hours=2))  # the push went out
        assert await journey_kit.emit(str(c["customer_id"]), {"type": "message.opened"}) == 1
        result = await handle.result()
    assert result.outcome == "engaged"
    assert [m.step for m in await journey_kit.sent()] == ["cart_reminder"]  # opened: no coupon


async def test_set_profile_changes_what_later_sends_use(journey_kit: JourneyKit) -> None:
    c = shopper()
    async with journey_kit.worker():
        handle = await journey_kit.journeys.order_paid(order_of(c), c)
        await journey_kit.advance(timedelta(minutes=1))
        await journey_kit.set_profile(str(c["customer_id"]), phone=Recipients.NOT_ON_KAKAO)  # a new phone
        await journey_kit.journeys.order_shipped(handle.id.split(":", 1)[1])
        await journey_kit.advance(timedelta(minutes=1))
        sent = await journey_kit.sent(workflow_id=handle.id)
    assert [(m.step, m.channel) for m in sent] == [
        ("payment_complete", Channel.ALIMTALK),
        ("shipping_started", Channel.SMS),  # the new number is no KakaoTalk user
    ]


async def test_setup_mistakes_say_so_in_one_line(journey_kit: JourneyKit) -> None:
    with pytest.raises(KitSetupError, match="no message with key 'nope' was sent in this test"):
        await journey_kit.deliver("nope")
    with pytest.raises(KitSetupError, match="no customer 'c-unknown' in this test's store"):
        await journey_kit.set_profile("c-unknown", tier="vip")

    async def elsewhere() -> None:
        check_loop(journey_kit._loop)

    other = asyncio.new_event_loop()
    try:
        with pytest.raises(KitSetupError, match='asyncio_default_test_loop_scope = "session"'):
            await asyncio.to_thread(other.run_until_complete, elsewhere())
    finally:
        other.close()


def test_a_shop_project_uses_the_plugin_with_nothing_to_import(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        textwrap.dedent(
            """
            [tool.pytest.ini_options]
            asyncio_mode = "auto"
            asyncio_default_fixture_loop_scope = "session"
            asyncio_default_test_loop_scope = "session"
            """
        )
    )
    pytester.makepyfile(
        test_shop=textwrap.dedent(
            """
            from datetime import timedelta

            async def test_payment_message(journey_kit):
                c = {"customer_id": "c-shop", "phone": "010-1234-5678"}
                order = {"order_id": "o-shop", "customer_id": "c-shop", "amount": 1000,
                         "items": [{"name": "x", "unit_price": 1000}]}
                async with journey_kit.worker():
                    await journey_kit.journeys.order_paid(order, c)
                    await journey_kit.advance(timedelta(hours=1))
                assert [m.step for m in await journey_kit.sent()] == ["payment_complete"]
            """
        )
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


async def test_any_registered_journey_starts_and_is_signalled_through_the_facade(journey_kit: JourneyKit) -> None:
    from durable_journeys.starter.errors import InvalidInput
    from tests.workflows.promo import FlashSaleJourney, PromoInput, PromoJourney

    journey_kit.journeys.journey_classes.append(PromoJourney)  # as Journeys(journeys=[PromoJourney]) would
    c = shopper(marketing_consent={"sms": await journey_kit.now() - timedelta(days=1)})
    await journey_kit.set_profile(c)
    inp = PromoInput(
        customer_id=str(c["customer_id"]), channels=[Channel.SMS], template="recent_buyer_sale", after=timedelta(days=1)
    )
    async with journey_kit.worker(PromoJourney):
        first = await journey_kit.journeys.start_journey(PromoJourney, inp, customer_id=str(c["customer_id"]))
        again = await journey_kit.journeys.start_journey(PromoJourney, inp, customer_id=str(c["customer_id"]))
        assert first.id == f"promo:{c['customer_id']}" and first.result_run_id == again.result_run_id
        assert await journey_kit.journeys.signal_journey(
            PromoJourney, {"type": "message.opened"}, key=str(c["customer_id"])
        )
        await first.result()
        assert not await journey_kit.journeys.signal_journey(
            PromoJourney, {"type": "message.opened"}, key=str(c["customer_id"])
        )
        with pytest.raises(InvalidInput, match="FlashSaleJourney is not registered"):
            await journey_kit.journeys.start_journey(FlashSaleJourney, inp, customer_id=str(c["customer_id"]))
        timeline = await journey_kit.timeline(first.id)
    assert [m.step for m in await journey_kit.sent()] == ["promo"]
    assert [e.step for e in timeline if e.outcome is Outcome.EVENT] == ["message.opened"]


# -- fault injection: a provider that fails, a store that is down, the sandbox's own API ------------


@pytest.mark.parametrize(
    ("faults", "outcomes", "sent"),
    [
        # refused on AlimTalk: the step moves to SMS (the provider's second call goes through)
        (("rejected",), [(Channel.ALIMTALK, Outcome.REJECTED), (Channel.SMS, Outcome.SENT)], [Channel.SMS]),
        # unavailable twice: the send activity retries, and the AlimTalk goes out once
        (("unavailable", "unavailable"), [(Channel.ALIMTALK, Outcome.SENT)], [Channel.ALIMTALK]),
        # a configuration error: the step stops, nothing else is tried
        (("config",), [(None, Outcome.CONFIG_ERROR)], []),
    ],
)
async def test_a_provider_can_be_wrapped_with_scripted_faults(
    journey_kit: JourneyKit,
    faults: tuple[str, ...],
    outcomes: list[tuple[Channel | None, Outcome]],
    sent: list[Channel],
) -> None:
    from durable_journeys.starter.testing import FaultyProvider

    faulty = journey_kit.wrap_provider("sandbox", lambda p: FaultyProvider(p, *faults))  # type: ignore[arg-type]
    c = shopper()
    async with journey_kit.worker():
        handle = await journey_kit.journeys.order_paid(order_of(c), c)
        await journey_kit.advance(timedelta(hours=1))
        timeline = await journey_kit.timeline(handle.id)
        went = await journey_kit.sent(workflow_id=handle.id)
    payment = [(e.channel, e.outcome) for e in timeline if e.step == "payment_complete"]
    assert [o for o in payment if o[1] is not Outcome.DELIVERED and o[1] is not Outcome.NOT_DELIVERED] == [
        (channel if outcome is not Outcome.CONFIG_ERROR else Channel.ALIMTALK, outcome) for channel, outcome in outcomes
    ]
    assert [m.channel for m in went] == sent
    assert len(faulty.calls) == len(faults) + len(sent)


async def test_one_channel_can_be_routed_through_a_replaced_provider(journey_kit: JourneyKit) -> None:
    from durable_journeys.starter.testing import FaultyProvider

    journey_kit.replace_provider("inbox", FaultyProvider(journey_kit.stack.providers.get("sandbox")))
    journey_kit.route(Channel.SMS, "inbox")  # SMS now goes through the (replaced) inbox provider
    with pytest.raises(KitSetupError, match="no provider 'nope' in this kit"):
        journey_kit.replace_provider("nope", journey_kit.stack.providers.get("sandbox"))
    with pytest.raises(KitSetupError, match="nope"):
        journey_kit.route(Channel.SMS, "nope")
    assert journey_kit.stack.providers.chain(Channel.SMS)[0].name == "sandbox"


async def test_while_the_store_is_down_sends_wait_and_go_out_after(journey_kit: JourneyKit) -> None:
    c = shopper()
    async with journey_kit.worker():
        async with journey_kit.store_down():
            handle = await journey_kit.journeys.order_paid(order_of(c), c)
            await journey_kit.advance(timedelta(minutes=15))  # a round of attempts fails: the step waits
            during = await journey_kit.sent(workflow_id=handle.id)
            waiting = [e.detail for e in await journey_kit.timeline(handle.id) if e.outcome is Outcome.WAITING]
        await journey_kit.advance(timedelta(hours=1))
        after = await journey_kit.sent(workflow_id=handle.id)
    assert during == [] and waiting == ["StoreUnavailable, will retry"]
    assert [(m.step, m.channel) for m in after] == [("payment_complete", Channel.ALIMTALK)]


async def test_the_sandbox_api_takes_the_kit_s_auth_header(journey_kit: JourneyKit) -> None:
    import httpx

    stack = journey_kit.stack
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.sandbox_app), base_url="http://s") as http:
        ok = await http.get("/v1/messages", headers=stack.sandbox_auth())
        refused = await http.get("/v1/messages", headers=stack.api_auth())
    assert (ok.status_code, refused.status_code) == (200, 401)


CART_EVENT = {"type": "cart.updated", "data": {"cart": {"items": [{"name": "케이스", "unit_price": 9000}]}}}


@pytest.mark.parametrize("touch", ["emit cart.updated", "customer_active", "order_shipped", "skip_wait"])
async def test_leaving_the_worker_right_after_a_call_leaves_the_server_s_clock_free(
    env: WorkflowEnvironment, tmp_path: Path, touch: str
) -> None:
    """A workflow task handed to a worker as it stops would keep the time-skipping server's clock still
    for every later test, even once its journey is terminated: the kit's worker settles first."""
    customer = {"customer_id": f"c-settle-{uuid.uuid4().hex[:8]}", "name": "하늘", "phone": Recipients.DELIVERS}
    order = {"order_id": f"o-{uuid.uuid4().hex[:8]}", "customer_id": customer["customer_id"], "amount": 1000}
    order["items"] = [{"name": "a", "unit_price": 1000}]
    async with kit_on(env, tmp_path / "settle.db") as kit:
        await kit.set_profile(customer)
        async with kit.worker():
            if touch == "emit cart.updated":
                await kit.emit(str(customer["customer_id"]), CART_EVENT)
            elif touch == "customer_active":
                await kit.journeys.customer_active(str(customer["customer_id"]))
            else:
                handle = await kit.journeys.order_paid(order, customer)
                await kit.advance(timedelta(minutes=5))
                if touch == "order_shipped":
                    await kit.journeys.order_shipped(str(order["order_id"]))
                else:
                    await kit.journeys.skip_wait(handle.id, operator="jimin", reason="settle test")
            # and leave at once
    # The kit terminated the journey; an hour of journey time still passes at once.
    before = await env.get_current_time()
    await asyncio.wait_for(env.sleep(timedelta(hours=1)), timeout=10)
    assert await env.get_current_time() - before >= timedelta(hours=1)
