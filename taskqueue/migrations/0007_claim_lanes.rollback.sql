ALTER TABLE taskqueue.tasks
    ALTER COLUMN run_at SET DEFAULT now(),
    ALTER COLUMN created_at SET DEFAULT now();
DROP TABLE taskqueue.claim_lanes;
