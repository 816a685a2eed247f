"""API keys: shown once, stored as a hash, limited to customers that exist, revocable."""

from __future__ import annotations

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.api_key import KEY_PREFIX, Role, hash_secret
from creditctl.domain.errors import InvalidRequest, RevokedKey, Unauthenticated
from creditctl.services.api_keys import authenticate, create_api_key, revoke_api_key
from tests.unit.services.conftest import CUSTOMER

pytestmark = pytest.mark.unit


class TestCreateApiKey:
    def test_shows_the_secret_once_and_keeps_only_its_hash(
        self, uow: FakeUnitOfWork, clock: FakeClock, store: FakeStore
    ) -> None:
        made = create_api_key(name="orders", role="orders", customers=[CUSTOMER], uow=uow, clock=clock)
        assert made.secret.startswith(KEY_PREFIX)
        assert made.key.role is Role.ORDERS
        assert made.key.customers == frozenset({CUSTOMER})
        assert list(store.state.api_keys) == [hash_secret(made.secret)]
        assert made.secret not in repr(store.state.api_keys)

    def test_refuses_an_unknown_role(self, uow: FakeUnitOfWork, clock: FakeClock) -> None:
        with pytest.raises(InvalidRequest, match=r"role must be one of .* not 'root'"):
            create_api_key(name="x", role="root", customers=None, uow=uow, clock=clock)

    def test_refuses_an_empty_name(self, uow: FakeUnitOfWork, clock: FakeClock) -> None:
        with pytest.raises(InvalidRequest, match="a name is required"):
            create_api_key(name="  ", role="admin", customers=None, uow=uow, clock=clock)

    def test_a_customer_the_provider_names_needs_no_registration(
        self, uow: FakeUnitOfWork, clock: FakeClock, store: FakeStore, balances: FakeBalanceProvider
    ) -> None:
        balances.set_balance("8800000003", "GA10", "1.00")
        made = create_api_key(
            name="erp", role="orders", customers=["8800000003"], uow=uow, clock=clock, balances=balances
        )
        assert made.key.customers == frozenset({"8800000003"})
        assert "8800000003" in store.state.customers

    def test_a_code_no_one_knows_is_still_refused(
        self, uow: FakeUnitOfWork, clock: FakeClock, store: FakeStore, balances: FakeBalanceProvider
    ) -> None:
        with pytest.raises(InvalidRequest, match="unknown customers: 8800000009"):
            create_api_key(
                name="x", role="orders", customers=["8800000009"], uow=uow, clock=clock, balances=balances
            )
        assert not store.state.api_keys

    def test_refuses_customers_that_do_not_exist(
        self, uow: FakeUnitOfWork, clock: FakeClock, store: FakeStore
    ) -> None:
        with pytest.raises(InvalidRequest, match="unknown customers: 8800000009"):
            create_api_key(name="x", role="orders", customers=[CUSTOMER, "8800000009"], uow=uow, clock=clock)
        assert store.state.api_keys == {}


class TestAuthenticate:
    def test_finds_the_key_for_its_secret(self, uow: FakeUnitOfWork, clock: FakeClock) -> None:
        made = create_api_key(name="a", role="auditor", customers=None, uow=uow, clock=clock)
        assert authenticate(made.secret, uow=uow) == made.key

    @pytest.mark.parametrize(
        ("secret", "message"), [("", "an API key is required"), ("cck_nope", "not valid")]
    )
    def test_refuses_a_missing_or_unknown_secret(
        self, uow: FakeUnitOfWork, secret: str, message: str
    ) -> None:
        with pytest.raises(Unauthenticated, match=message):
            authenticate(secret, uow=uow)

    def test_a_revoked_key_is_refused_saying_it_was_revoked_and_when(
        self, uow: FakeUnitOfWork, clock: FakeClock
    ) -> None:
        """Its holder is told to get a new key, not left to suspect a typing mistake."""
        made = create_api_key(name="a", role="orders", customers=None, uow=uow, clock=clock)
        assert revoke_api_key(made.key.id, uow=uow, clock=clock) is True
        assert revoke_api_key(made.key.id, uow=uow, clock=clock) is False
        when = clock.now().isoformat().replace("+00:00", "Z")
        with pytest.raises(RevokedKey, match=f"'a' \\(id {made.key.id}\\) was revoked at {when}") as refused:
            authenticate(made.secret, uow=uow)
        assert isinstance(refused.value, Unauthenticated) and refused.value.errors == {
            "api_key": [f"revoked at {when}"]
        }
