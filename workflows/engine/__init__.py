"""The journey engine, layered by concern (see ``core``); ``workflows.steps.JourneyWorkflow`` composes it."""
