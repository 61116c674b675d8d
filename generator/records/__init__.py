"""The JSON records every output is rendered from (a build's, a comparison's, a sweep's), their
schema versions and the policy they carry (warnings, recommendations, rankings). Plain
dictionaries; no engine is imported here."""
