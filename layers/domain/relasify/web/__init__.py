"""Handler wiring shared by the API functions: resolver factory, problem+json mapping,
authentication context and role guards. The only domain module that knows HTTP."""
