"""Message templates: per-channel text with ``#{var}`` placeholders (the AlimTalk syntax).

Templates are checked when registered (cp949 encodable for phone channels) and their variables
are checked before a journey starts, so a missing variable never surfaces weeks later at send time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from activities.customers import CustomerProfile
from providers import PHONE_CHANNELS, Channel, Purpose, TemplateError, cp949_length

_VAR = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Template(BaseModel):
    """One message in every channel it can go out on."""

    model_config = ConfigDict(frozen=True)

    code: str
    purpose: Purpose = Purpose.INFORMATIONAL
    texts: dict[Channel, str]
    subjects: dict[Channel, str] = Field(default_factory=dict)
    provider_template_codes: dict[Channel, str] = Field(
        default_factory=dict,
        description="the provider's own template per channel: the Kakao-approved AlimTalk or Brand Message "
        "template code, the RCS format id",
    )
    image_keys: dict[Channel, list[str]] = Field(
        default_factory=dict,
        description="provider file keys of images (Bizgo MMS fileKey, at most 3): an SMS with images is an MMS",
    )

    def variables(self, channels: Iterable[Channel] | None = None) -> set[str]:
        """Placeholders used on ``channels`` (all channels by default)."""
        chosen = self.texts if channels is None else [c for c in channels if c in self.texts]
        names: set[str] = set()
        for ch in chosen:
            names |= set(_VAR.findall(self.texts[ch]))
            names |= set(_VAR.findall(self.subjects.get(ch, "")))
        return names


class Rendered(BaseModel):
    """A template filled in for one channel."""

    body: str
    subject: str | None = None
    provider_template_code: str | None = None
    image_keys: list[str] = Field(default_factory=list)


def profile_variables(profile: CustomerProfile) -> dict[str, str]:
    """Variables filled from the profile at send time, so history holds no personal data."""
    return {"customer_name": profile.name or "고객"}


def _fill(text: str, variables: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: variables[m.group(1)], text)


class TemplateRegistry:
    """Templates by code."""

    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self._templates: dict[str, Template] = {}
        for template in templates:
            self.register(template)

    def register(self, template: Template) -> None:
        """Add a template.

        Raises:
            TemplateError: the code is taken, or phone-channel text is not cp949-encodable.
        """
        if template.code in self._templates:
            raise TemplateError(f"template {template.code!r} is registered twice")
        for channel, text in template.texts.items():
            if channel in PHONE_CHANNELS:
                cp949_length(text)
                cp949_length(template.subjects.get(channel, ""))
        self._templates[template.code] = template

    def get(self, code: str) -> Template:
        """The template with ``code``.

        Raises:
            TemplateError: no such template.
        """
        try:
            return self._templates[code]
        except KeyError:
            raise TemplateError(f"unknown template {code!r}") from None

    def validate(self, code: str, channels: Iterable[Channel], variables: Mapping[str, str]) -> None:
        """Check that ``code`` exists, covers ``channels`` and gets every variable it uses.

        Raises:
            TemplateError: what is wrong, named.
        """
        template = self.get(code)
        channels = list(channels)
        missing_channels = [c.value for c in channels if c not in template.texts]
        if missing_channels:
            raise TemplateError(f"template {code!r} has no text for {', '.join(missing_channels)}")
        missing = sorted(template.variables(channels) - set(variables))
        if missing:
            raise TemplateError(f"template {code!r} needs variable(s) {', '.join(missing)}")
        for channel in channels:
            if channel in PHONE_CHANNELS:
                self.render(code, channel, variables)  # catches values cp949 cannot carry

    def render(self, code: str, channel: Channel, variables: Mapping[str, str]) -> Rendered:
        """Fill in the template for ``channel``.

        Raises:
            TemplateError: unknown template or channel, a missing variable, or text a phone
                channel cannot carry.
        """
        template = self.get(code)
        if channel not in template.texts:
            raise TemplateError(f"template {code!r} has no text for {channel.value}")
        missing = sorted(template.variables([channel]) - set(variables))
        if missing:
            raise TemplateError(f"template {code!r} needs variable(s) {', '.join(missing)}")
        body = _fill(template.texts[channel], variables)
        subject = template.subjects.get(channel)
        subject = _fill(subject, variables) if subject else None
        if channel in PHONE_CHANNELS:
            cp949_length(body)
            cp949_length(subject or "")
        return Rendered(
            body=body,
            subject=subject,
            provider_template_code=template.provider_template_codes.get(channel),
            image_keys=template.image_keys.get(channel, []),
        )


_ORDER_PAID = (
    "#{customer_name}님, 결제가 완료되었습니다.\n주문번호: #{order_id}\n상품: #{item_name}\n결제금액: #{amount}원"
)
_SHIPPED = "#{customer_name}님, 주문하신 상품이 발송되었습니다.\n주문번호: #{order_id}\n상품: #{item_name}"
_REVIEW = "#{customer_name}님, #{item_name} 잘 받으셨나요? 리뷰를 남겨 주세요.\n#{review_url}"
_SALE = (
    "#{customer_name}님, 최근 구매 고객님만을 위한 특별 할인! "
    "이번 주 한정 최대 30% 할인 혜택을 확인하세요.\n#{sale_url}"
)

POST_PURCHASE_TEMPLATES = (
    Template(
        code="order_paid",
        texts={Channel.ALIMTALK: _ORDER_PAID, Channel.SMS: _ORDER_PAID},
        subjects={Channel.SMS: "결제 완료 안내"},
        provider_template_codes={Channel.ALIMTALK: "ORDER_PAID_V1"},
    ),
    Template(
        code="order_shipped",
        texts={Channel.ALIMTALK: _SHIPPED, Channel.SMS: _SHIPPED},
        subjects={Channel.SMS: "배송 시작 안내"},
        provider_template_codes={Channel.ALIMTALK: "ORDER_SHIPPED_V1"},
    ),
    Template(
        code="review_request",
        texts={Channel.ALIMTALK: _REVIEW, Channel.SMS: _REVIEW},
        provider_template_codes={Channel.ALIMTALK: "REVIEW_REQUEST_V1"},
    ),
    Template(
        code="recent_buyer_sale",
        purpose=Purpose.ADVERTISING,
        texts={Channel.SMS: _SALE},
        subjects={Channel.SMS: "최근 구매 고객 특별 할인"},
    ),
)


_CART_PUSH = "#{customer_name}님, 장바구니에 #{item_names}을(를) 담아 두셨어요. 품절 전에 확인해 보세요!"
_CART_COUPON = (
    "#{customer_name}님, 장바구니 상품(#{item_names}, #{cart_total}원)을 위한 할인 쿠폰을 드려요.\n"
    "쿠폰 코드: #{coupon_code}\n#{cart_url}"
)

CART_TEMPLATES = (
    Template(
        code="cart_reminder",
        purpose=Purpose.ADVERTISING,
        texts={Channel.PUSH: _CART_PUSH, Channel.WEB_PUSH: _CART_PUSH},
        subjects={Channel.PUSH: "장바구니를 잊지 마세요", Channel.WEB_PUSH: "장바구니를 잊지 마세요"},
    ),
    Template(
        code="cart_coupon",
        purpose=Purpose.ADVERTISING,
        texts={Channel.BRAND_MESSAGE: _CART_COUPON, Channel.EMAIL: _CART_COUPON},
        subjects={Channel.EMAIL: "#{customer_name}님을 위한 장바구니 쿠폰"},
        provider_template_codes={Channel.BRAND_MESSAGE: "CART_COUPON_BM_V1"},
    ),
)

_WELCOME = "#{customer_name}님, 첫 구매를 환영합니다! 이용 가이드를 확인해 보세요.\n#{tutorial_url}"
_RECOMMEND = "#{customer_name}님을 위한 추천 상품이 도착했어요.\n#{recommendation_url}"
_VIP = "#{customer_name}님, VIP 고객님께 무료배송과 전용 상담 혜택이 적용되었습니다."
_REGULAR = "#{customer_name}님, 구매 2주를 맞아 멤버십 혜택을 안내해 드려요. 다음 구매 시 적립금 2배!"
_CARE_CHANNELS = (Channel.PUSH, Channel.IN_APP, Channel.EMAIL, Channel.SMS)

CARE_TEMPLATES = (
    Template(
        code="care_welcome",
        texts={Channel.IN_APP: _WELCOME, Channel.EMAIL: _WELCOME, Channel.SMS: _WELCOME},
        subjects={Channel.IN_APP: "환영합니다", Channel.EMAIL: "환영합니다"},
    ),
    Template(
        code="care_recommendation",
        purpose=Purpose.ADVERTISING,
        texts={Channel.IN_APP: _RECOMMEND, Channel.SMS: _RECOMMEND},
        subjects={Channel.IN_APP: "추천 상품"},
        provider_template_codes={Channel.IN_APP: "banner"},
    ),
    Template(code="care_tier_vip", texts={c: _VIP for c in _CARE_CHANNELS}),
    Template(code="care_tier_regular", texts={c: _REGULAR for c in _CARE_CHANNELS}),
)


def default_templates() -> TemplateRegistry:
    """The templates the reference journeys use."""
    return TemplateRegistry([*POST_PURCHASE_TEMPLATES, *CART_TEMPLATES, *CARE_TEMPLATES])
