"""A shop's own journey package, as the guide (docs/writing-a-journey.md) builds it: runnable as it is."""
