-- Synthetic demo data for Foreman's sql_query tool: agent runs executed as durable workflows.
-- Generated once with a fixed seed; numbers are illustrative, not measurements of a real system.
PRAGMA foreign_keys = ON;
BEGIN;
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    input_usd_per_mtok REAL NOT NULL,
    output_usd_per_mtok REAL NOT NULL
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    model TEXT NOT NULL REFERENCES models(name),
    status TEXT NOT NULL CHECK (status IN ('completed', 'failed', 'budget_exceeded', 'cancelled')),
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    model_calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    worker_restarts INTEGER NOT NULL DEFAULT 0,
    approvals_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    tool TEXT NOT NULL,
    side_effect TEXT NOT NULL CHECK (side_effect IN ('read', 'write', 'destructive')),
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    last_error_type TEXT, -- error of the last failed attempt; NULL when the first attempt succeeded
    latency_ms INTEGER NOT NULL
);
INSERT INTO models VALUES ('smollm2-360m-local', 'local', 0.0, 0.0);
INSERT INTO models VALUES ('gpt-4o-mini', 'openai', 0.15, 0.6);
INSERT INTO models VALUES ('claude-3-5-haiku', 'anthropic', 0.8, 4.0);
INSERT INTO runs VALUES ('goal-0303-01', 'Draft a runbook for worker restarts', 'smollm2-360m-local', 'completed', '2025-03-03T09:23:00Z', 52.7, 10, 22330, 1440, 0.0, 1, 0);
INSERT INTO runs VALUES ('goal-0303-02', 'Summarise retry semantics of activities', 'gpt-4o-mini', 'completed', '2025-03-03T16:35:00Z', 129.4, 13, 27287, 4199, 0.00661, 0, 0);
INSERT INTO runs VALUES ('goal-0304-03', 'Summarise retry semantics of activities', 'claude-3-5-haiku', 'completed', '2025-03-04T01:29:00Z', 108.1, 13, 17173, 4862, 0.03319, 0, 1);
INSERT INTO runs VALUES ('goal-0304-04', 'Draft a runbook for worker restarts', 'smollm2-360m-local', 'completed', '2025-03-04T06:48:00Z', 83.4, 18, 34218, 6030, 0.0, 1, 1);
INSERT INTO runs VALUES ('goal-0304-05', 'Collect observability fields for LLM calls', 'gpt-4o-mini', 'completed', '2025-03-04T16:03:00Z', 24.4, 4, 7380, 1204, 0.00183, 0, 0);
INSERT INTO runs VALUES ('goal-0305-06', 'List determinism rules for workflow code', 'claude-3-5-haiku', 'completed', '2025-03-05T00:20:00Z', 51.3, 4, 4792, 1336, 0.00918, 1, 2);
INSERT INTO runs VALUES ('goal-0305-07', 'Summarise retry semantics of activities', 'smollm2-360m-local', 'completed', '2025-03-05T05:38:00Z', 17.9, 7, 7259, 1582, 0.0, 0, 0);
INSERT INTO runs VALUES ('goal-0305-08', 'Compare approval gates for destructive tools', 'gpt-4o-mini', 'completed', '2025-03-05T10:09:00Z', 92.0, 17, 32283, 6086, 0.00849, 0, 1);
INSERT INTO runs VALUES ('goal-0305-09', 'Estimate token cost of a research goal', 'claude-3-5-haiku', 'failed', '2025-03-05T18:33:00Z', 124.1, 16, 22240, 5200, 0.03859, 0, 0);
INSERT INTO runs VALUES ('goal-0306-10', 'Collect observability fields for LLM calls', 'smollm2-360m-local', 'failed', '2025-03-06T03:50:00Z', 72.6, 16, 35472, 2608, 0.0, 0, 0);
INSERT INTO runs VALUES ('goal-0306-11', 'Summarise retry semantics of activities', 'gpt-4o-mini', 'completed', '2025-03-06T08:27:00Z', 176.3, 16, 38192, 7232, 0.01007, 1, 0);
INSERT INTO runs VALUES ('goal-0306-12', 'Check budget enforcement across subagents', 'gpt-4o-mini', 'completed', '2025-03-06T15:34:00Z', 87.5, 14, 29316, 5376, 0.00762, 1, 1);
INSERT INTO runs VALUES ('goal-0307-13', 'Estimate token cost of a research goal', 'smollm2-360m-local', 'failed', '2025-03-07T00:35:00Z', 28.4, 7, 10269, 987, 0.0, 1, 0);
INSERT INTO runs VALUES ('goal-0307-14', 'Write a report on idempotency keys', 'gpt-4o-mini', 'completed', '2025-03-07T05:45:00Z', 43.3, 5, 6675, 2310, 0.00239, 0, 1);
INSERT INTO runs VALUES ('goal-0307-15', 'Collect observability fields for LLM calls', 'claude-3-5-haiku', 'completed', '2025-03-07T11:24:00Z', 35.8, 4, 6368, 1612, 0.01154, 1, 2);
INSERT INTO runs VALUES ('goal-0307-16', 'Draft a runbook for worker restarts', 'smollm2-360m-local', 'failed', '2025-03-07T21:09:00Z', 68.2, 17, 29988, 7922, 0.0, 0, 1);
INSERT INTO runs VALUES ('goal-0308-17', 'Draft a runbook for worker restarts', 'gpt-4o-mini', 'budget_exceeded', '2025-03-08T03:03:00Z', 23.5, 4, 7916, 968, 0.00177, 0, 1);
INSERT INTO runs VALUES ('goal-0308-18', 'Write a report on idempotency keys', 'smollm2-360m-local', 'failed', '2025-03-08T12:19:00Z', 62.5, 14, 26782, 5586, 0.0, 0, 1);
INSERT INTO runs VALUES ('goal-0308-19', 'List determinism rules for workflow code', 'smollm2-360m-local', 'completed', '2025-03-08T16:10:00Z', 41.7, 13, 18148, 6162, 0.0, 0, 1);
INSERT INTO runs VALUES ('goal-0309-20', 'Write a report on idempotency keys', 'gpt-4o-mini', 'completed', '2025-03-09T02:33:00Z', 39.7, 4, 6052, 1100, 0.00157, 0, 2);
INSERT INTO runs VALUES ('goal-0309-21', 'Estimate token cost of a research goal', 'claude-3-5-haiku', 'completed', '2025-03-09T05:24:00Z', 49.1, 5, 4815, 705, 0.00667, 0, 0);
INSERT INTO runs VALUES ('goal-0309-22', 'Estimate token cost of a research goal', 'smollm2-360m-local', 'cancelled', '2025-03-09T15:04:00Z', 26.9, 7, 16905, 3164, 0.0, 0, 0);
INSERT INTO runs VALUES ('goal-0309-23', 'Check budget enforcement across subagents', 'gpt-4o-mini', 'completed', '2025-03-09T22:49:00Z', 44.1, 8, 18808, 3072, 0.00466, 0, 0);
INSERT INTO runs VALUES ('goal-0310-24', 'List determinism rules for workflow code', 'claude-3-5-haiku', 'completed', '2025-03-10T05:25:00Z', 89.1, 18, 20340, 8640, 0.05083, 0, 1);
INSERT INTO tool_calls VALUES (1, 'goal-0303-01', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 27);
INSERT INTO tool_calls VALUES (2, 'goal-0303-01', 'http_fetch', 'read', 4, 'ok', 'ToolTransient', 1720);
INSERT INTO tool_calls VALUES (3, 'goal-0303-02', 'sql_query', 'read', 1, 'ok', NULL, 11);
INSERT INTO tool_calls VALUES (4, 'goal-0303-02', 'sql_query', 'read', 1, 'ok', NULL, 9);
INSERT INTO tool_calls VALUES (5, 'goal-0304-03', 'read_file', 'read', 1, 'ok', NULL, 6);
INSERT INTO tool_calls VALUES (6, 'goal-0304-03', 'sql_query', 'read', 1, 'ok', NULL, 17);
INSERT INTO tool_calls VALUES (7, 'goal-0304-03', 'sql_query', 'read', 1, 'ok', NULL, 16);
INSERT INTO tool_calls VALUES (8, 'goal-0304-04', 'calculate', 'read', 1, 'ok', NULL, 2);
INSERT INTO tool_calls VALUES (9, 'goal-0304-04', 'search_corpus', 'read', 1, 'ok', NULL, 52);
INSERT INTO tool_calls VALUES (10, 'goal-0304-04', 'calculate', 'read', 1, 'ok', NULL, 1);
INSERT INTO tool_calls VALUES (11, 'goal-0304-04', 'sql_query', 'read', 1, 'ok', NULL, 13);
INSERT INTO tool_calls VALUES (12, 'goal-0304-05', 'http_fetch', 'read', 1, 'ok', NULL, 384);
INSERT INTO tool_calls VALUES (13, 'goal-0304-05', 'http_fetch', 'read', 1, 'ok', NULL, 905);
INSERT INTO tool_calls VALUES (14, 'goal-0304-05', 'sql_query', 'read', 1, 'ok', NULL, 15);
INSERT INTO tool_calls VALUES (15, 'goal-0304-05', 'http_fetch', 'read', 1, 'ok', NULL, 392);
INSERT INTO tool_calls VALUES (16, 'goal-0304-05', 'read_file', 'read', 1, 'failed', 'ToolFailed', 8);
INSERT INTO tool_calls VALUES (17, 'goal-0305-06', 'http_fetch', 'read', 1, 'ok', NULL, 949);
INSERT INTO tool_calls VALUES (18, 'goal-0305-06', 'sql_query', 'read', 1, 'ok', NULL, 9);
INSERT INTO tool_calls VALUES (19, 'goal-0305-07', 'write_file', 'write', 1, 'failed', 'PathOutsideWorkspace', 8);
INSERT INTO tool_calls VALUES (20, 'goal-0305-07', 'http_fetch', 'read', 3, 'ok', 'ToolTransient', 2197);
INSERT INTO tool_calls VALUES (21, 'goal-0305-08', 'calculate', 'read', 1, 'failed', 'ToolArgumentsInvalid', 2);
INSERT INTO tool_calls VALUES (22, 'goal-0305-08', 'sql_query', 'read', 1, 'ok', NULL, 28);
INSERT INTO tool_calls VALUES (23, 'goal-0305-08', 'sql_query', 'read', 1, 'ok', NULL, 9);
INSERT INTO tool_calls VALUES (24, 'goal-0305-08', 'write_file', 'write', 1, 'ok', NULL, 11);
INSERT INTO tool_calls VALUES (25, 'goal-0305-08', 'read_file', 'read', 1, 'ok', NULL, 4);
INSERT INTO tool_calls VALUES (26, 'goal-0305-09', 'http_fetch', 'read', 4, 'ok', 'ToolTransient', 2106);
INSERT INTO tool_calls VALUES (27, 'goal-0305-09', 'calculate', 'read', 1, 'ok', NULL, 1);
INSERT INTO tool_calls VALUES (28, 'goal-0305-09', 'read_file', 'read', 1, 'ok', NULL, 4);
INSERT INTO tool_calls VALUES (29, 'goal-0305-09', 'http_fetch', 'read', 1, 'ok', NULL, 922);
INSERT INTO tool_calls VALUES (30, 'goal-0306-10', 'calculate', 'read', 1, 'ok', NULL, 2);
INSERT INTO tool_calls VALUES (31, 'goal-0306-10', 'http_fetch', 'read', 1, 'ok', NULL, 319);
INSERT INTO tool_calls VALUES (32, 'goal-0306-10', 'read_file', 'read', 1, 'ok', NULL, 3);
INSERT INTO tool_calls VALUES (33, 'goal-0306-10', 'http_fetch', 'read', 1, 'ok', NULL, 911);
INSERT INTO tool_calls VALUES (34, 'goal-0306-10', 'http_fetch', 'read', 1, 'ok', NULL, 689);
INSERT INTO tool_calls VALUES (35, 'goal-0306-11', 'write_file', 'write', 1, 'ok', NULL, 18);
INSERT INTO tool_calls VALUES (36, 'goal-0306-11', 'write_file', 'write', 1, 'ok', NULL, 7);
INSERT INTO tool_calls VALUES (37, 'goal-0306-12', 'sql_query', 'read', 2, 'ok', 'ToolTransient', 35);
INSERT INTO tool_calls VALUES (38, 'goal-0306-12', 'calculate', 'read', 1, 'failed', 'ToolArgumentsInvalid', 1);
INSERT INTO tool_calls VALUES (39, 'goal-0306-12', 'sql_query', 'read', 1, 'ok', NULL, 9);
INSERT INTO tool_calls VALUES (40, 'goal-0307-13', 'write_file', 'write', 1, 'ok', NULL, 14);
INSERT INTO tool_calls VALUES (41, 'goal-0307-13', 'calculate', 'read', 1, 'ok', NULL, 2);
INSERT INTO tool_calls VALUES (42, 'goal-0307-13', 'sql_query', 'read', 1, 'ok', NULL, 27);
INSERT INTO tool_calls VALUES (43, 'goal-0307-13', 'write_file', 'write', 1, 'ok', NULL, 8);
INSERT INTO tool_calls VALUES (44, 'goal-0307-13', 'http_fetch', 'read', 2, 'ok', 'ToolTransient', 1008);
INSERT INTO tool_calls VALUES (45, 'goal-0307-14', 'http_fetch', 'read', 2, 'ok', 'ToolTransient', 1281);
INSERT INTO tool_calls VALUES (46, 'goal-0307-14', 'calculate', 'read', 1, 'ok', NULL, 1);
INSERT INTO tool_calls VALUES (47, 'goal-0307-14', 'sql_query', 'read', 1, 'ok', NULL, 15);
INSERT INTO tool_calls VALUES (48, 'goal-0307-15', 'search_corpus', 'read', 1, 'ok', NULL, 85);
INSERT INTO tool_calls VALUES (49, 'goal-0307-15', 'search_corpus', 'read', 1, 'ok', NULL, 81);
INSERT INTO tool_calls VALUES (50, 'goal-0307-16', 'search_corpus', 'read', 1, 'ok', NULL, 33);
INSERT INTO tool_calls VALUES (51, 'goal-0307-16', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 26);
INSERT INTO tool_calls VALUES (52, 'goal-0307-16', 'write_file', 'write', 1, 'ok', NULL, 6);
INSERT INTO tool_calls VALUES (53, 'goal-0307-16', 'search_corpus', 'read', 1, 'ok', NULL, 57);
INSERT INTO tool_calls VALUES (54, 'goal-0308-17', 'write_file', 'write', 1, 'ok', NULL, 10);
INSERT INTO tool_calls VALUES (55, 'goal-0308-17', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 22);
INSERT INTO tool_calls VALUES (56, 'goal-0308-17', 'sql_query', 'read', 1, 'ok', NULL, 18);
INSERT INTO tool_calls VALUES (57, 'goal-0308-18', 'calculate', 'read', 1, 'ok', NULL, 2);
INSERT INTO tool_calls VALUES (58, 'goal-0308-18', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 62);
INSERT INTO tool_calls VALUES (59, 'goal-0308-18', 'write_file', 'write', 1, 'failed', 'PathOutsideWorkspace', 16);
INSERT INTO tool_calls VALUES (60, 'goal-0308-19', 'sql_query', 'read', 1, 'failed', 'ToolArgumentsInvalid', 27);
INSERT INTO tool_calls VALUES (61, 'goal-0308-19', 'read_file', 'read', 1, 'failed', 'ToolFailed', 5);
INSERT INTO tool_calls VALUES (62, 'goal-0308-19', 'http_fetch', 'read', 4, 'ok', 'ToolTransient', 2619);
INSERT INTO tool_calls VALUES (63, 'goal-0308-19', 'search_corpus', 'read', 1, 'ok', NULL, 30);
INSERT INTO tool_calls VALUES (64, 'goal-0309-20', 'write_file', 'write', 1, 'ok', NULL, 10);
INSERT INTO tool_calls VALUES (65, 'goal-0309-20', 'sql_query', 'read', 1, 'failed', 'ToolArgumentsInvalid', 26);
INSERT INTO tool_calls VALUES (66, 'goal-0309-20', 'sql_query', 'read', 1, 'ok', NULL, 25);
INSERT INTO tool_calls VALUES (67, 'goal-0309-20', 'read_file', 'read', 1, 'ok', NULL, 6);
INSERT INTO tool_calls VALUES (68, 'goal-0309-20', 'search_corpus', 'read', 1, 'ok', NULL, 80);
INSERT INTO tool_calls VALUES (69, 'goal-0309-21', 'http_fetch', 'read', 3, 'ok', 'ToolTransient', 2547);
INSERT INTO tool_calls VALUES (70, 'goal-0309-21', 'sql_query', 'read', 1, 'ok', NULL, 19);
INSERT INTO tool_calls VALUES (71, 'goal-0309-21', 'calculate', 'read', 1, 'ok', NULL, 0);
INSERT INTO tool_calls VALUES (72, 'goal-0309-22', 'search_corpus', 'read', 1, 'ok', NULL, 64);
INSERT INTO tool_calls VALUES (73, 'goal-0309-22', 'calculate', 'read', 1, 'ok', NULL, 0);
INSERT INTO tool_calls VALUES (74, 'goal-0309-22', 'search_corpus', 'read', 1, 'ok', NULL, 27);
INSERT INTO tool_calls VALUES (75, 'goal-0309-23', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 51);
INSERT INTO tool_calls VALUES (76, 'goal-0309-23', 'sql_query', 'read', 1, 'ok', NULL, 13);
INSERT INTO tool_calls VALUES (77, 'goal-0309-23', 'read_file', 'read', 1, 'ok', NULL, 2);
INSERT INTO tool_calls VALUES (78, 'goal-0309-23', 'search_corpus', 'read', 1, 'ok', NULL, 84);
INSERT INTO tool_calls VALUES (79, 'goal-0310-24', 'http_fetch', 'read', 2, 'ok', 'ToolTransient', 1104);
INSERT INTO tool_calls VALUES (80, 'goal-0310-24', 'search_corpus', 'read', 1, 'failed', 'ToolFailed', 70);
INSERT INTO tool_calls VALUES (81, 'goal-0310-24', 'http_fetch', 'read', 2, 'ok', 'ToolTransient', 1942);
INSERT INTO tool_calls VALUES (82, 'goal-0310-24', 'write_file', 'write', 1, 'failed', 'PathOutsideWorkspace', 12);
INSERT INTO tool_calls VALUES (83, 'goal-0310-24', 'sql_query', 'read', 3, 'ok', 'ToolTransient', 80);
COMMIT;
