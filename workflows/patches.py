"""The journeys' live patch ids, each with the release that may retire it.

1.0 is the versioning baseline: no run older than 1.0 exists, so no patch is live. A change to a
journey's command sequence after 1.0 goes behind ``workflow.patched(ID)`` and is listed here
(``tests/test_patches.py`` fails for a patch id used in ``workflows/`` and not listed, or listed
and no longer used). Its life (README, "Changing a live journey safely"):

1. ``workflow.patched(ID)`` in release ``since``: old runs replay the old path, new runs record a
   marker and take the new one; the histories of that release are recorded beside the older ones.
2. ``workflow.deprecate_patch(ID)`` in release ``deprecate_in``, once every run started before
   ``since`` has ended (the longest journey, post-purchase with a late delivery and the sale, runs
   about 45 days; a consent notice waits two years, but continues as new at each notice).
3. Removed, with its old path, in release ``remove_in``, once no run of ``deprecate_in``'s
   predecessors is left; the histories older than ``since`` are deleted with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Patch:
    """A live patch: its id and the releases of its life."""

    id: str
    since: str  # the release that introduced it
    deprecate_in: str  # the release that may make it workflow.deprecate_patch(id)
    remove_in: str  # the release that may remove it and its old path
    why: str  # what changed


LIVE: tuple[Patch, ...] = ()


@dataclass(frozen=True)
class Generation:
    """An engine generation: changes to every journey's commands, gated by the run's memo.

    A change that saves every journey actions is gated by ``self.engine >= number`` instead of
    a patch: a patch's marker and ``TemporalChangeVersion`` upsert would cost each new run the
    two actions it saves. The facade's one start path writes ``ENGINE`` into a run's memo (and
    continue-as-new carries it); runs without it replay generation 1. Retired like a patch:
    once no run of an older generation is left, its branches go, with its histories.
    """

    number: int
    since: str  # the release whose starts take it
    why: str  # what changed


GENERATIONS: tuple[Generation, ...] = (
    Generation(
        2,
        since="1.1",
        why="a run does not ask for the send queues before its first send (a send on the journey's own queue "
        "for a rate-limited provider answers WrongSendQueue with the routes): a local activity, its marker "
        "and a workflow task fewer per journey",
    ),
    Generation(
        3,
        since="1.2",
        why="a send whose receipt the journey waits for asks for it in its answer: a receipt that comes within "
        "the worker's receipt grace (JOURNEYS_RECEIPT_GRACE_SECONDS) arrives with the activity's result, so the "
        "journey neither takes a signal nor starts a receipt timer: two actions fewer per message",
    ),
    Generation(
        4,
        since="1.4",
        why="a run's waits share their timers: a wait an event can end takes a running timer that fires no later "
        "than its deadline (a post-purchase journey's wait for delivery takes the wait for shipping's), and "
        "starts one for the rest only if that fires first: a timer fewer per post-purchase journey, and a "
        "cart's idle wait no longer starts a timer at each update",
    ),
)
