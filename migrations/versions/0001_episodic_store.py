"""episodic store: episodes, sleep runs, adapters, lineage

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 19:37:52.312850
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sleep_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('namespace', sa.String(length=128), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=32), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=256), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sleep_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sleep_runs_namespace_state', ['namespace', 'state'], unique=False)
        batch_op.create_index('uq_sleep_runs_live_namespace', ['namespace'], unique=True, postgresql_where=sa.text("state IN ('queued', 'running', 'evaluating')"), sqlite_where=sa.text("state IN ('queued', 'running', 'evaluating')"))

    op.create_table('adapters',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('namespace', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('parent_version', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('experts', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['sleep_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'version', name='uq_adapters_namespace_version')
    )
    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.create_index('uq_adapters_active_namespace', ['namespace'], unique=True, postgresql_where=sa.text("state = 'active'"), sqlite_where=sa.text("state = 'active'"))

    op.create_table('episodes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('namespace', sa.String(length=128), nullable=False),
    sa.Column('conversation_id', sa.String(length=256), nullable=True),
    sa.Column('idempotency_key', sa.String(length=256), nullable=True),
    sa.Column('messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('adapter_version', sa.Integer(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consolidated_by', sa.Uuid(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['consolidated_by'], ['sleep_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'idempotency_key', name='uq_episodes_namespace_idempotency_key')
    )
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.create_index('ix_episodes_backlog', ['namespace', 'status', 'consolidated_by'], unique=False)
        batch_op.create_index('ix_episodes_namespace_created_at', ['namespace', 'created_at'], unique=False)

    op.create_table('adapter_episodes',
    sa.Column('adapter_id', sa.Uuid(), nullable=False),
    sa.Column('episode_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['adapter_id'], ['adapters.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('adapter_id', 'episode_id')
    )


def downgrade() -> None:
    op.drop_table('adapter_episodes')
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.drop_index('ix_episodes_namespace_created_at')
        batch_op.drop_index('ix_episodes_backlog')

    op.drop_table('episodes')
    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.drop_index('uq_adapters_active_namespace', postgresql_where=sa.text("state = 'active'"), sqlite_where=sa.text("state = 'active'"))

    op.drop_table('adapters')
    with op.batch_alter_table('sleep_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_sleep_runs_live_namespace', postgresql_where=sa.text("state IN ('queued', 'running', 'evaluating')"), sqlite_where=sa.text("state IN ('queued', 'running', 'evaluating')"))
        batch_op.drop_index('ix_sleep_runs_namespace_state')

    op.drop_table('sleep_runs')
