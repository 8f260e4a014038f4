-- Mask anything that looks like a credential in a text bound for the database.
CREATE OR REPLACE FUNCTION pgbars._redact_secrets(p_text text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    Defence in depth: the worker never puts keys in error texts, but a
    provider may echo a URL back. Query parameters and bearer tokens are
    masked, and the text is capped at 2000 characters.
    */
    SELECT left(
        regexp_replace(
            regexp_replace(
                p_text,
                '((api_?key|apikey|token|access_token|secret|password)=)[^&\s"'']+',
                '\1***',
                'gi'
            ),
            '(bearer\s+)[A-Za-z0-9._~+/=-]+',
            '\1***',
            'gi'
        ),
        2000
    );
$$;

COMMENT ON FUNCTION pgbars._redact_secrets(text) IS
'Masks key=..., token=... parameters and bearer tokens, and caps the text at 2000 characters.';
