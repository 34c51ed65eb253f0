"""PID 1 duties of the container: persistence, seeding, hooks, supervision, clean stop."""
