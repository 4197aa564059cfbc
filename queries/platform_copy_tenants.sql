COPY tenants (tenant_id, business_name, phone_number, timezone, status) FROM STDIN (FORMAT binary)
