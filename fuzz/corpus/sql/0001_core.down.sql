-- 0001_core: undo. The engagement schema itself stays: it holds
-- schema_migrations, which belongs to migrate.
DROP TABLE engagement.engagement_states;
DROP TABLE engagement.user_preferences;
DROP TABLE engagement.users;
DROP TABLE engagement.time_zones;
DROP FUNCTION engagement.touch_updated_at();
