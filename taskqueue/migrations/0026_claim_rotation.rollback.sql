-- Undo 0026_claim_rotation: claims start their turns at the oldest head again.
DROP SEQUENCE taskqueue.claim_rotation;
