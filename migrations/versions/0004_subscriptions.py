"""subscriptions: durable checkpoints, consumer groups, parked events

Revision ID: pyes_0004
Revises: pyes_0003
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0004"
down_revision = "pyes_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Everything this revision created (tables, functions), and nothing else.
    run_script(
        """
        DROP FUNCTION pyes.window_bounds(text, text, timestamptz, timestamptz, text[], text[]);
        DROP FUNCTION pyes.read_window(text, text, timestamptz, timestamptz, text[], text[], integer);
        DROP FUNCTION pyes.validate_window(text, text, timestamptz, timestamptz);
        DROP FUNCTION pyes.record_processed(text, uuid);
        DROP FUNCTION pyes.finish_parked_retry(bigint, text, integer);
        DROP FUNCTION pyes.take_parked_retries(text, integer);
        DROP FUNCTION pyes.discard_parked(text, bigint[]);
        DROP FUNCTION pyes.retry_parked(text, bigint[]);
        DROP FUNCTION pyes.check_parked_ids(text, bigint[]);
        DROP FUNCTION pyes.park_event(text, text, integer, uuid, text, integer);
        DROP FUNCTION pyes.save_checkpoint(text, text, integer, text, bigint);
        DROP FUNCTION pyes.leave_subscription(text, text);
        DROP FUNCTION pyes.release_partitions(text, text, integer[]);
        DROP FUNCTION pyes.join_subscription(text, text, double precision);
        DROP FUNCTION pyes.validate_lease_seconds(double precision);
        DROP FUNCTION pyes.read_subscription(text, integer, text, integer);
        DROP FUNCTION pyes.delete_subscription(text);
        DROP FUNCTION pyes.create_subscription(text, text[], text[], integer, text);
        DROP FUNCTION pyes.get_subscription(text);
        DROP FUNCTION pyes.stream_partition(text, integer);
        DROP FUNCTION pyes.validate_subscription_filters(text[], text[]);
        DROP FUNCTION pyes.validate_subscription_name(text, text);
        DROP TABLE pyes.processed_events;
        DROP TABLE pyes.parked_events;
        DROP TABLE pyes.subscription_members;
        DROP TABLE pyes.subscription_partitions;
        DROP TABLE pyes.subscriptions;
        """
    )
