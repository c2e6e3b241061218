"""Settings split by concern: `base` (shared), `local` (embedded database by default),
`test` (a separate embedded server for the test session), `production`."""
