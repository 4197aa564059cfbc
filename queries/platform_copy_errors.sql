COPY system_errors (error_id, tenant_id, call_id, error_type, error_message, severity,
                    resolved, created_at) FROM STDIN (FORMAT binary)
