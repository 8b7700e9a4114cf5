// API v2 tests: owned by the API half of the sandbox.
