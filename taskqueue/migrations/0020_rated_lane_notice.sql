-- A tenant with a rate limit on starts (0017_tenant_rates) is served by the
-- governed claim, and a worker's plain claim skips its lanes; a worker
-- learns that one of its queues holds such a lane once a poll interval, or
-- at once on a tenant_settings message. A rated tenant's first task in a
-- queue opens a new lane, which no message announced: it waited for the
-- poll. Now the lane's insert announces it, on the same control channel and
-- in the same shape as a rate change (queries/set_tenant_rate.sql), sent at
-- its producer's commit. Only for rows actually inserted (ON CONFLICT DO
-- NOTHING inserts none for a lane that exists) and for tenants' lanes.
-- depends: 0019_expiry_sweep_index

CREATE FUNCTION taskqueue.announce_rated_lane() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM taskqueue.tenant_rates r WHERE r.tenant = NEW.tenant) THEN
        PERFORM pg_notify('taskqueue_control',
                          json_build_object('tenant_settings', NEW.tenant)::text);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION taskqueue.announce_rated_lane() FROM PUBLIC;

CREATE TRIGGER claim_lanes_rated_announced
AFTER INSERT ON taskqueue.claim_lanes
FOR EACH ROW WHEN (NEW.tenant <> '')
EXECUTE FUNCTION taskqueue.announce_rated_lane();
