-- Fair claiming across claims, not only within one: a claim of several
-- tenants' tasks starts its turns at a tenant that moves on with every
-- claim (claim_tasks.sql, claim_governed_tasks.sql), where it used to start
-- at the oldest head. A worker whose slots free one at a time claims one
-- task at a time, so with the oldest head first a tenant's flood of 1,600
-- tasks still ran before another tenant's next 20. This sequence is the
-- claims' counter: a claim of n tasks starts n places after the one before.
-- depends: 0025_children_lanes_without_waiting

CREATE SEQUENCE taskqueue.claim_rotation AS bigint CYCLE;
