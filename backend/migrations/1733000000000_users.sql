-- Up Migration
-- Accounts only: no message, no name, no e-mail. See README "What we store about a user".
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind text NOT NULL CHECK (kind IN ('device', 'external')),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Carried in device tokens as "ver"; raising it revokes every token minted before.
  token_version integer NOT NULL DEFAULT 0
);

-- An external provider's user (Supabase, Firebase, Auth0…), by a hash of issuer and subject.
CREATE TABLE external_identities (
  identity_hash text PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX external_identities_user_id ON external_identities (user_id);

-- The device-token signing secret the instances share when AUTH_JWT_SECRET is unset.
CREATE TABLE signing_secrets (
  name text PRIMARY KEY,
  secret bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE signing_secrets;
DROP TABLE external_identities;
DROP TABLE users;
