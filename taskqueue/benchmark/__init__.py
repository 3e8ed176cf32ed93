"""``taskqueue bench``: throughput, latency and memory of this queue on your
own PostgreSQL, each figure next to a reference measured in the same run."""
