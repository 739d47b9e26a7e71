"""Fair share: the queue serves people in turn, not first come, first served, so one person's sweep of 40 runs
cannot hold every slot while another person waits.

The next run to start is the one whose owner has the fewest runs training (starting or running), counting
those that go ahead of it in this same order; between owners with as many, the run queued first. Runs made
before owners (owner '') queue as one more person. service.pump starts runs in this order; the slot itself is
still claimed in one transaction (RunStore.claim), so two pumps at once never overfill the slots.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Iterable

from lmcore.limits import Limits, load_limits
from lmcore.runs.people import owner_of
from lmcore.runs.store import ACTIVE, Run, RunStore
from lmcore.values import ordinal

TRAINING = ("starting", "running")


def queued_first(run: Run) -> tuple[float, int]:
    """When a run joined the queue: a queued row is written when queued (created, resumed) and not again
    until it starts, so its updated_at says when; the id breaks ties."""
    return run.updated_at, run.id


def training_counts(runs: Iterable[Run]) -> Counter:
    """Runs starting or running, by owner."""
    return Counter(owner_of(r) for r in runs if r.status in TRAINING)


def fair_order(queued: Iterable[Run], training: Counter) -> list[Run]:
    """The queued runs in the order the queue starts them (see the module's doc)."""
    lines: dict[str, deque] = defaultdict(deque)  # each owner's runs, first queued first
    for run in sorted(queued, key=queued_first):
        lines[owner_of(run)].append(run)
    turns = [(training[owner], queued_first(line[0]), owner) for owner, line in lines.items()]
    heapq.heapify(turns)
    order = []
    while turns:
        count, _, owner = heapq.heappop(turns)
        order.append(lines[owner].popleft())
        if lines[owner]:
            heapq.heappush(turns, (count + 1, queued_first(lines[owner][0]), owner))
    return order


def queue_position(store: RunStore, run_id: int, limits: Limits | None = None) -> tuple[int, str] | None:
    """(place, why) of a queued run in the fair order, for its owner: (3, "3rd in line: 2 of 2 slots busy; the
    queue takes people in turn: …"). None when the run is not waiting in the queue."""
    return queue_positions(store, [run_id], limits).get(run_id)


def queue_positions(store: RunStore, run_ids: Iterable[int], limits: Limits | None = None) -> dict:
    """{run id: (place, why)} for those of the runs waiting in the queue, from one reading of it."""
    active = store.list_runs(ACTIVE)
    training = training_counts(active)
    order = fair_order([r for r in active if r.status == "queued"], training)
    slots = (limits or load_limits(store.home)).max_parallel_jobs
    busy = sum(training.values())
    wanted, found = set(run_ids), {}
    for place, run in enumerate(order):
        if run.id in wanted:
            head = f"{ordinal(place + 1)} in line: {busy} of {slots} slots busy"
            why = "it starts at the queue's next turn" if place < slots - busy else _turns(order, place, training)
            found[run.id] = (place + 1, f"{head}; {why}")
    return found


def _turns(order: list[Run], place: int, training: Counter) -> str:
    """Why earlier runs of others wait behind order[place], or later ones go ahead of it, in one clause."""
    run, ahead, behind = order[place], order[:place], order[place + 1:]
    load = training + Counter(owner_of(r) for r in ahead)  # runs training, or starting before this one
    others = lambda runs: [r for r in runs if owner_of(r) != owner_of(run)]
    passed = next((r for r in others(behind) if queued_first(r) < queued_first(run)), None)
    if passed is not None:
        return (f"the queue takes people in turn: {_name(passed)} queued earlier but has {load[owner_of(passed)]} "
                f"training or ahead, you {load[owner_of(run)]}")
    later = next((r for r in others(ahead) if queued_first(r) > queued_first(run)), None)
    if later is not None:
        return (f"the queue takes people in turn: {_name(later)}'s later run goes first, {_name(later)} having fewer "
                "training or ahead than you")
    if not ahead:
        return "it starts when a slot frees"
    own = len(ahead) - len(others(ahead))
    return f"your own {own} earlier run{'s go' if own > 1 else ' goes'} first" if own == len(ahead) else \
        "the runs ahead were queued before it"


def _name(run: Run) -> str:
    return run.owner_name or "someone"
