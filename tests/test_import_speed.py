"""The shortcuts of the customer import's set-based path against what they stand for: the collector paused
per chunk and back afterwards, hooks called per customer exactly when someone implements them."""

from __future__ import annotations

import csv
import gc
import io
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from crmkit_fitness import FitnessPlugin

from crmkit import CRM, hookimpl
from crmkit.imports import collector

HEADER = ["name", "email", "phone", "goal", "created_at", "stage"]
ROWS = [
    ["Anna", "anna@x.example", "(212) 200-0001", "muscle", "", ""],
    ["Ben", "ben@x.example", "+1 212 200 0002", "health", "2024-03-01", "active"],
    ["Cleo", "cleo@x.example", "not a phone", "", "", ""],  # rejected
    ["Dan", "dan@x.example", "", "", "", ""],
]


def _csv(rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER) -> io.BytesIO:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "upload.csv"
    return upload


# -- the collector ----------------------------------------------------------------------------------------


def test_the_collector_is_off_during_a_chunk_and_on_again_after_it_even_when_it_fails() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested, or another thread's chunk
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("the chunk failed")
    assert gc.isenabled()


def test_a_collector_the_application_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_last_of_several_threads_leaves_its_chunk() -> None:
    inside, leave = threading.Barrier(3), threading.Event()

    def chunk() -> None:
        with collector.paused():
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=chunk) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert not gc.isenabled()
    leave.set()
    for thread in threads:
        thread.join()
    assert gc.isenabled()


def test_an_import_leaves_the_collector_on_and_is_paused_while_it_writes(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = crm_factory([FitnessPlugin()])
    seen: list[bool] = []
    original = crm.customers.create_many

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(crm.customers, "create_many", watched)
    report = crm.imports.customers(_csv(ROWS), chunk_size=2)
    assert (report.counts["created"], report.counts["rejected"]) == (3, 1)
    assert seen and not any(seen)
    assert gc.isenabled()


# -- hooks ------------------------------------------------------------------------------------------------


class Created:
    plugin_name = "created_only"

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    @hookimpl
    def crmkit_customer_created(self, customer: Any) -> None:
        self.told.append(("created", customer["name"]))


class Moved:
    plugin_name = "moved_only"

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    @hookimpl
    def crmkit_stage_changed(self, change: Any) -> None:
        self.told.append(("moved", (change["to_stage"], change["cause"])))


class Wrapped:
    """Only a wrapper: it counts as an implementation, so the hook is still called."""

    plugin_name = "wrapper_only"

    def __init__(self) -> None:
        self.told: list[str] = []

    @hookimpl(wrapper=True)
    def crmkit_customer_created(self, customer: Any) -> Any:
        self.told.append(customer["name"])
        return (yield)


@pytest.mark.parametrize("make", [Created, Moved, Wrapped])
def test_a_chunk_tells_each_hook_someone_implements_what_the_line_path_tells(
    crm_factory: Any, monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    from crmkit.imports.customers import CustomerLines

    chunked, by_line = make(), make()
    ours = crm_factory([FitnessPlugin(), chunked]).imports.customers(_csv(ROWS), preview=10)
    with monkeypatch.context() as patched:
        patched.setattr(CustomerLines, "apply_chunk", lambda self, t, lines: [self.apply(t, x) for x in lines])
        theirs = crm_factory([FitnessPlugin(), by_line]).imports.customers(_csv(ROWS), preview=10)
    assert ours.preview == theirs.preview
    assert chunked.told == by_line.told and len(chunked.told) == 3


def test_a_batch_without_listeners_calls_neither_hook(crm_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crm: CRM = crm_factory([FitnessPlugin()])
    called: list[str] = []
    monkeypatch.setattr(type(crm.hooks), "customer_created", lambda self, tx, customer: called.append("created"))
    monkeypatch.setattr(type(crm.hooks), "stage_changed", lambda self, tx, change: called.append("moved"))
    report = crm.imports.customers(_csv(ROWS))
    assert report.counts["created"] == 3 and called == []
