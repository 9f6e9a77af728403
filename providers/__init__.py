"""Channel providers: HTTP/SMTP clients with no Temporal in them."""

from providers.base import (
    PHONE_CHANNELS,
    Channel,
    DeliveryReceipt,
    ErrorClass,
    OutboundMessage,
    Provider,
    Purpose,
    ReceiptMode,
    ReceiptStatus,
    SendResult,
    SendStatus,
    SmsKind,
)
from providers.errors import (
    ConfigError,
    JourneysError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    SignatureError,
    TemplateError,
    WebhookError,
)
from providers.korean import cp949_length, sms_kind
from providers.registry import ProviderRegistry

__all__ = [
    "PHONE_CHANNELS",
    "Channel",
    "ConfigError",
    "DeliveryReceipt",
    "ErrorClass",
    "JourneysError",
    "OutboundMessage",
    "Provider",
    "ProviderError",
    "ProviderRegistry",
    "ProviderRejected",
    "ProviderUnavailable",
    "Purpose",
    "ReceiptMode",
    "ReceiptStatus",
    "SendResult",
    "SendStatus",
    "SignatureError",
    "SmsKind",
    "TemplateError",
    "WebhookError",
    "cp949_length",
    "sms_kind",
]
