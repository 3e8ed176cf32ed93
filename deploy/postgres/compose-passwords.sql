-- compose.yaml runs this after roles.sql: the login passwords of the roles the
-- API and the workers use, from psql variables (-v api_password=...), so that
-- no password is written in a file. Elsewhere, set them by hand, e.g. with
-- \password taskqueue_api in psql.
ALTER ROLE taskqueue_api PASSWORD :'api_password';
ALTER ROLE taskqueue_worker PASSWORD :'worker_password';
