"""The sync steps (auth -> contacts -> leads -> finish), cursors and bulk upserts."""
