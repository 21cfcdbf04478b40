"""config.json: loading, validation, defaults and the resolved plan."""
