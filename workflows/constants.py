"""Task queues and search attributes, in one place."""

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "journeys"

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY = SearchAttributeKey.for_keyword("Journey")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
SEARCH_ATTRIBUTES = (CUSTOMER_ID, JOURNEY, JOURNEY_STAGE)
