-- Issue 22: every event is signed by the service that made it. A result's row keeps the signed event exactly as
-- it arrived, so `beacon export` can hand anyone the fact itself and `beacon verify` can check its signature
-- offline. NULL for rows recorded before events were signed (verify reports them as unsigned).
ALTER TABLE executions ADD COLUMN event text;
