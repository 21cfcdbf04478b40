"""The container process: spawn (parent), sync (the channel), init (child setup)."""
