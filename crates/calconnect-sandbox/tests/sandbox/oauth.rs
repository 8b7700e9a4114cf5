// OAuth tests: owned by the OAuth half of the sandbox.
