-- Undo 0020_rated_lane_notice: a rated tenant's new lane waits for a poll again.
DROP TRIGGER claim_lanes_rated_announced ON taskqueue.claim_lanes;
DROP FUNCTION taskqueue.announce_rated_lane();
