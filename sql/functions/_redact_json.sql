-- Mask anything that looks like a credential in a JSON value bound for the quarantine.
CREATE OR REPLACE FUNCTION pgbars._redact_json(p_raw jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    A provider may echo a request back inside a row it sends (a URL with the
    key as a query parameter, a header), and rejected_bars.raw keeps refused
    rows as they came. The rules of _redact_secrets, applied to the JSON
    text so that the result is still the same JSON with only the secret
    values replaced: key=... query parameters, bearer tokens, and the values
    of members named like a credential ("apiKey": "...", "token": "...").
    */
    SELECT regexp_replace(
        regexp_replace(
            regexp_replace(
                p_raw::text,
                '((api_?key|apikey|token|access_token|secret|password)=)[^&\s"''\\]+',
                '\1***',
                'gi'
            ),
            '(bearer\s+)[A-Za-z0-9._~+/=-]+',
            '\1***',
            'gi'
        ),
        '("(api_?key|apikey|token|access_token|secret|password|authorization)"\s*:\s*)"(?:[^"\\]|\\.)*"',
        '\1"***"',
        'gi'
    )::jsonb;
$$;

COMMENT ON FUNCTION pgbars._redact_json(jsonb) IS
'Masks key=... parameters, bearer tokens and credential-named members in a JSON value; the result is '
'the same JSON otherwise.';
