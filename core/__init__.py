"""Pure rules shared by workflows and activities: no I/O, no clocks, no randomness, no settings.

Dependencies point one way: contracts -> core -> (workflows | activities) -> wiring. Workflow code
imports these modules through `imports_passed_through`; activities import them directly. One copy of
each rule (hashing, host matching, SQL scanning, Retry-After, policy, templating, untrusted wrapping,
plan validation, activity options, the tool catalogue) serves both the gate and the tool.
"""
