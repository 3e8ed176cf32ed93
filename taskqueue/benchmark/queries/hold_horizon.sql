-- taskqueue bench (pressure): run inside the pinning session's open
-- transaction. Taking an XID is what an idle-in-transaction session that
-- wrote something does: until it ends, vacuum may remove no row version that
-- died after it began. Returns the XID. txid_current() rather than
-- pg_current_xact_id() so that the bench runs on every supported server.
SELECT txid_current();
