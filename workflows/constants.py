"""Task queues and search attributes, in one place."""

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "journeys"

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY = SearchAttributeKey.for_keyword("Journey")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
SEARCH_ATTRIBUTES = (CUSTOMER_ID, JOURNEY, JOURNEY_STAGE)

# The engine generation a run started with, in its memo (set by the facade's one start path and
# at continue-as-new). A change that saves every journey actions is gated by it rather than by
# workflow.patched(), whose marker and TemporalChangeVersion upsert would cost every new run two
# actions for as long as the patch lives: runs started before the change (no memo: generation 1)
# replay the old path, new runs take the new one (workflows/patches.py lists what each changed).
ENGINE_MEMO = "journeys_engine"
ENGINE = 4
