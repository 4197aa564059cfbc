(('x' || left(encode(sha256(convert_to(coalesce({column}::text, '00000000-0000-0000-0000-000000000000'), 'UTF8')), 'hex'), 8))::bit(32)::bigint % {count}) = {index}
