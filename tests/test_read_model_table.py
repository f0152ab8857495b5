"""The other direction of docs/adopting.md: events to a CRUD table kept by an inline
projection, queried through SQLAlchemy's ORM as an ordinary table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import settle
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pyes import EventStore, InlineProjectionFailed, NewEvent, Projections
from pyes.migrate import engine_for

READ_MODEL_SQL = """
CREATE TABLE public.customers (
    stream_id  text PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    active     boolean NOT NULL DEFAULT true
);

CREATE FUNCTION public.apply_customer(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE e.type
    WHEN 'CustomerRegistered' THEN
        INSERT INTO customers (stream_id, name, email) VALUES (e.stream_id, e.data->>'name', e.data->>'email');
    WHEN 'CustomerEmailChanged' THEN
        UPDATE customers SET email = e.data->>'email' WHERE stream_id = e.stream_id;
    WHEN 'CustomerDeactivated' THEN
        UPDATE customers SET active = false WHERE stream_id = e.stream_id;
    END CASE;
END $$;
"""
TYPES = ["CustomerRegistered", "CustomerEmailChanged", "CustomerDeactivated"]


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    stream_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str]
    active: Mapped[bool]


@pytest.fixture
def customers(store: EventStore, dsn: str) -> Iterator[Session]:
    store.append("customer-1", [NewEvent("CustomerRegistered", {"name": "Ann", "email": "ann@old.example"})])
    with store.connection() as conn:
        conn.execute(READ_MODEL_SQL)
    projections = Projections(store)
    projections.register("customers", "public.apply_customer(pyes.events)", event_types=TYPES, mode="inline",
                         tables=["customers"], stream_column="stream_id")
    settle(store)
    projections.catch_up("customers")  # history first, then inline
    engine = engine_for(dsn)
    with Session(engine) as session:
        yield session
    engine.dispose()


def rows(session: Session) -> list[tuple[str, str, bool]]:
    """What the ORM reads now (each call its own short transaction, as in a web request)."""
    try:
        return [(c.name, c.email, c.active) for c in session.scalars(select(Customer).order_by(Customer.name))]
    finally:
        session.rollback()


def test_the_orm_reads_a_table_kept_by_events(store: EventStore, customers: Session) -> None:
    assert rows(customers) == [("Ann", "ann@old.example", True)]
    store.append("customer-1", [NewEvent("CustomerEmailChanged", {"email": "ann@new.example"})])
    store.append("customer-2", [NewEvent("CustomerRegistered", {"name": "Bob", "email": "bob@example.org"}),
                                NewEvent("CustomerDeactivated", {})])
    assert rows(customers) == [("Ann", "ann@new.example", True), ("Bob", "bob@example.org", False)]
    active = customers.scalars(select(Customer).where(Customer.active)).all()
    assert [c.stream_id for c in active] == ["customer-1"]
    customers.rollback()


def test_undo_by_rewind_and_rebuild(store: EventStore, customers: Session) -> None:
    store.append("customer-1", [NewEvent("CustomerEmailChanged", {"email": "typo@example"})])
    store.rewind("customer-1", 1, expected_version=2, reason="typo", actor="support:lena")
    assert rows(customers) == [("Ann", "ann@old.example", True)]
    projections = Projections(store)
    before = rows(customers)
    projections.reset("customers")
    settle(store)
    projections.catch_up("customers")
    assert rows(customers) == before


def test_a_bad_event_is_refused_and_the_table_never_disagrees(store: EventStore, customers: Session) -> None:
    with pytest.raises(InlineProjectionFailed):
        store.append("customer-3", [NewEvent("CustomerRegistered", {"name": "Cid"})])  # no email: NOT NULL
    assert store.stream_version("customer-3") == 0
    assert rows(customers) == [("Ann", "ann@old.example", True)]
