-- A tenant's rate limit on starts (issue 20's quotas): at most rate_limit of
-- its tasks start per rolling rate_period_seconds, whichever queues and
-- workers start them. Enforced by the governed claim
-- (claim_governed_tasks.sql) under the row's lock, as a queue's rate limit
-- is; the plain claim (claim_tasks.sql) leaves a limited tenant's lanes to
-- it, and a worker claims through the governed one while a tenant with a row
-- here has a lane in its queues (queues_with_settings.sql).
-- A table of its own rather than columns of taskqueue.tenants: every
-- enqueue of a tenant with a quota holds that row (admit_tasks) until the
-- producer commits, possibly inside a long transaction of the caller; claims
-- locking the same row would wait for it, and every tenant's tasks in those
-- claims with them. A row exists only while the tenant is limited (a
-- tenant without one pays nothing), and a rate limit alone does not start
-- the counting of unfinished tasks that max_queued needs.
-- depends: 0016_history_chain

CREATE TABLE taskqueue.tenant_rates (
    tenant              text PRIMARY KEY
                        CONSTRAINT tenant_rates_tenant_shape
                        CHECK (length(tenant) <= 64
                               AND tenant ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'),
    rate_limit          integer NOT NULL,
    rate_period_seconds double precision NOT NULL,
    -- The rolling window: when each recent claim started tasks of the
    -- tenant, and how many (entries older than the period, plus a margin,
    -- are dropped; see claim_governed_tasks.sql).
    rate_window_at      timestamptz[] NOT NULL DEFAULT '{}',
    rate_window_n       integer[] NOT NULL DEFAULT '{}',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_rates_positive CHECK (rate_limit >= 1 AND rate_period_seconds > 0)
-- Updated by every claim that starts the tenant's tasks: room for HOT updates.
) WITH (fillfactor = 50);
