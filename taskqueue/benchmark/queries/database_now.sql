-- taskqueue bench: the database's clock now (not the transaction's start), so
-- that window bounds compare with the event timestamps the server wrote.
SELECT clock_timestamp();
