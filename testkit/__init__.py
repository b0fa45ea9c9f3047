"""Test and benchmark doubles for Foreman: a scripted `call_model` that keeps the real activity name
(`testkit.models`) and a stand-in for the humans and playbook authors around a goal (`testkit.goals`).

Shared by `tests/` and `bench/`, so bench/ never imports tests/. Never used by the worker, the starter or
any workflow or activity: nothing in production code may import this package.
"""
