"""The fake unit of work keeps the SQL store's promises that the services lean on (its unique keys as
tests/adapters/test_sql_repositories.py shows them on SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from creditctl.ports.repositories import OrderIdTaken
from tests.random_refs import random_order_id
from tests.unit.services.conftest import Desk


@pytest.mark.parametrize("batched", [False, True], ids=["at-once", "batched"])
def test_a_decision_id_stored_already_is_refused_for_another_order(desk: Desk, batched: bool) -> None:
    """Batched, as PostgreSQL's pipelined unit tells it: a taken order id, from commit(). At once: an
    integrity error (the primary key), not a taken order id."""
    first = desk.decide("1.00")
    again = copy.copy(first)
    again.order = replace(first.order, order_id=random_order_id("again"))
    uow = desk.uow
    with uow.batched() if batched else uow, pytest.raises(OrderIdTaken if batched else ValueError):
        uow.decisions.add_new(again)
        uow.commit()
    with uow:
        assert uow.decisions.get(again.order.customer_code, again.order_id) is None
