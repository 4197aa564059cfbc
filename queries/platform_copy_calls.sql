COPY call_logs (call_log_id, call_id, tenant_id, status, transcript, summary, outcome,
                stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd,
                duration_seconds, created_at, updated_at) FROM STDIN (FORMAT binary)
