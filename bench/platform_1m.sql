-- A platform of 500 tenants over 20 zones with :calls calls spread over
-- 2026-03-01 .. 2026-03-11 (UTC) and one error for every 10th call, with
-- transcripts of realistic size so that reading the wrong columns would
-- show. Loaded with psql -v calls=N.
INSERT INTO tenants (tenant_id, business_name, timezone, status)
SELECT ('b0000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid,
       'Tenant ' || g,
       (ARRAY['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles',
              'America/Sao_Paulo', 'Europe/London', 'Europe/Berlin', 'Europe/Madrid',
              'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Sydney', 'Australia/Adelaide',
              'Pacific/Auckland', 'Asia/Tokyo', 'Africa/Lagos', 'America/Toronto',
              'Pacific/Kiritimati', 'Etc/GMT+12', 'Asia/Dubai', NULL])[1 + g % 20],
       'active'
FROM generate_series(1, 500) g;

INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                       tts_cost_usd, total_cost_usd, duration_seconds, created_at, transcript, summary)
SELECT 'call-' || g,
       ('b0000000-0000-0000-0000-' || lpad(to_hex(1 + g % 500), 12, '0'))::uuid,
       (ARRAY['completed', 'completed', 'completed', 'failed', 'no-answer', 'busy'])[1 + g % 6],
       CASE WHEN g % 9 = 0 THEN NULL ELSE (ARRAY['booked', 'callback', 'not_interested', 'voicemail'])[1 + g % 4] END,
       round((g % 9000) / 1000000.0, 6),
       CASE WHEN g % 50 = 0 THEN NULL ELSE round((g % 250000) / 10000000.0, 6) END,
       round((g % 60000) / 10000000.0, 6),
       round((g % 9000) / 1000000.0, 6) + round((g % 250000) / 10000000.0, 6) + round((g % 60000) / 10000000.0, 6),
       CASE WHEN g % 20 = 0 THEN NULL ELSE g % 600 END,
       timestamptz '2026-03-01 00:00:00+00' + (g::float8 / :calls) * interval '10 days',
       repeat('caller and agent said things. ', 30),
       'summary of the call'
FROM generate_series(1, :calls) g;

INSERT INTO system_errors (tenant_id, call_id, error_type, severity, error_message, resolved, created_at)
SELECT CASE WHEN g % 97 = 0 THEN NULL
            ELSE ('b0000000-0000-0000-0000-' || lpad(to_hex(1 + g % 500), 12, '0'))::uuid END,
       'call-' || g,
       (ARRAY['stt_timeout', 'llm_error', 'tts_error', 'webhook_failed'])[1 + g % 4],
       (ARRAY['ERROR', 'CRITICAL', 'WARNING'])[1 + g % 3],
       'message that must never be read',
       g % 2 = 0,
       timestamptz '2026-03-01 00:00:00+00' + (g::float8 / :calls) * interval '10 days' + interval '1 minute'
FROM generate_series(1, :calls, 10) g;

ANALYZE tenants, call_logs, system_errors;
