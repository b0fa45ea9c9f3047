"""Foreman's web console: goals found by their search attributes, a goal's plan, steps and spend (live while it
runs), and an approval inbox where a logged-in person approves, denies or resolves as themselves.

    python -m console                 # http://localhost:8090 (FOREMAN_CONSOLE_ADDRESS / FOREMAN_CONSOLE_PORT)
    python -m console adduser NAME    # a user in FOREMAN_CONSOLE_USERS (scrypt password hash, optional key)

Modules: `app` (factory, routes), `auth` (session login, CSRF), `sessions` (the cookie, logouts kept),
`login_limits` (failed logins per name and address), `users` (users file, hashing), `views` (pages and actions),
`goals`, `goal_view`, `inbox` (the data each page shows, no web code).
"""
