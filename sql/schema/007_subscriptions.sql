-- Persistent subscriptions (docs/subscriptions.md): a durable name, what it follows, and one
-- checkpoint per partition. Streams are spread over a fixed number of partitions by a hash
-- of the stream id (pyes.stream_partition); each partition is handled by one member of the
-- consumer group at a time, under a lease that the database grants and expires.
CREATE TABLE pyes.subscriptions (
    name        text        PRIMARY KEY,
    -- NULL: every category. Otherwise the categories followed ("account" for account-1).
    categories  text[],
    -- NULL: every type. Otherwise only these event types are delivered.
    types       text[],
    -- Fixed at creation: changing it would move streams between checkpoints.
    partitions  integer     NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    -- The checkpoint every partition started from.
    start_checkpoint text   NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE pyes.subscriptions IS 'Durable subscriptions. Written by pyes.create_subscription and pyes.delete_subscription.';

CREATE TABLE pyes.subscription_partitions (
    subscription        text        NOT NULL REFERENCES pyes.subscriptions (name) ON DELETE CASCADE,
    "partition"         integer     NOT NULL CHECK ("partition" >= 0),
    -- The last (transaction_id, position) handled (or passed over: nothing of this partition
    -- is below it). Moves only forward, and only when its owner says the handler succeeded.
    checkpoint_xid      xid8        NOT NULL,
    checkpoint_position bigint      NOT NULL,
    -- The member that holds the partition's lease, and until when (the database's clock).
    owner               text,
    lease_expires_at    timestamptz,
    -- Events handled (or parked) through this partition, for monitoring.
    handled             bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, "partition")
);

COMMENT ON TABLE pyes.subscription_partitions IS 'One checkpoint and lease per partition of a subscription. Written by pyes.join_subscription, pyes.save_checkpoint, pyes.park_event.';

CREATE TABLE pyes.subscription_members (
    subscription text        NOT NULL REFERENCES pyes.subscriptions (name) ON DELETE CASCADE,
    member_id    text        NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    -- A member that has not renewed by then is gone: its partitions go to the others.
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (subscription, member_id)
);

COMMENT ON TABLE pyes.subscription_members IS 'Live members of each consumer group, renewed by pyes.join_subscription.';

-- Events whose handler kept failing: the subscription moved on past them.
CREATE TABLE pyes.parked_events (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription       text        NOT NULL REFERENCES pyes.subscriptions (name) ON DELETE CASCADE,
    event_id           uuid        NOT NULL,
    "position"         bigint      NOT NULL,
    stream_id          text        NOT NULL,
    type               text        NOT NULL,
    checkpoint         text        NOT NULL,
    error              text        NOT NULL,
    attempts           integer     NOT NULL CHECK (attempts >= 1),
    parked_at          timestamptz NOT NULL DEFAULT now(),
    last_attempt_at    timestamptz NOT NULL DEFAULT now(),
    -- Set by pyes.retry_parked; a running member of the subscription takes it and runs the
    -- handler again (success: the row is deleted).
    retry_requested_at timestamptz,
    CONSTRAINT parked_events_subscription_event_key UNIQUE (subscription, event_id)
);

CREATE INDEX parked_events_retry_idx ON pyes.parked_events (subscription, id) WHERE retry_requested_at IS NOT NULL;

COMMENT ON TABLE pyes.parked_events IS 'Dead letters of subscriptions. Written by pyes.park_event; pyes.retry_parked and pyes.discard_parked act on them.';

-- The idempotency helper: a handler that writes to this database records the event id in
-- the same transaction as its own writes (pyes.record_processed), so a redelivery is a no-op.
CREATE TABLE pyes.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

COMMENT ON TABLE pyes.processed_events IS 'Event ids a consumer has applied, written with its own writes by pyes.record_processed.';
