-- Who holds the account of a connection, as Cal.com names them at GET /v2/me (name, e-mail,
-- username) and when that was asked: personal data shown to the operator and the app, not a
-- secret. `profile_check_at` is when to ask again (microseconds since the Unix epoch; 0: at
-- once, so connections made before this version get their profile).
ALTER TABLE connections ADD COLUMN profile_name TEXT;
ALTER TABLE connections ADD COLUMN profile_email TEXT;
ALTER TABLE connections ADD COLUMN profile_username TEXT;
ALTER TABLE connections ADD COLUMN profile_fetched_at INTEGER;
ALTER TABLE connections ADD COLUMN profile_check_at INTEGER NOT NULL DEFAULT 0;

-- Listing every connection page by page in creation order (oldest first, ties by id).
CREATE INDEX connections_created ON connections (created_at, id);
-- The same for one status other than active (active ones are most of them: the index above,
-- filtered, serves those). Partial like connections_not_active, so that the due-for-refresh
-- queries' `status = 'active'` never matches it.
CREATE INDEX connections_listing_not_active ON connections (status, created_at, id)
    WHERE status <> 'active';
-- Profiles due to be asked for again.
CREATE INDEX connections_profile_check ON connections (profile_check_at) WHERE status = 'active';
