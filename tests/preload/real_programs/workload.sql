-- A deterministic SQLite workload: recursive CTE, indexes, joins,
-- aggregates, strings, a transaction and a rollback.
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c INTEGER);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
INSERT INTO t SELECT x, printf('row-%05d', x), (x * 7919) % 10007 FROM n;
CREATE INDEX t_c ON t(c);
SELECT count(*), sum(c), min(b), max(b) FROM t;
SELECT c, count(*) FROM t GROUP BY c % 10 ORDER BY 1 LIMIT 5;
CREATE TABLE u AS SELECT a, upper(b) AS ub FROM t WHERE a % 3 = 0;
SELECT count(*), length(group_concat(ub, ',')) FROM t JOIN u USING (a);
BEGIN;
DELETE FROM t WHERE a % 2 = 0;
SELECT count(*) FROM t;
ROLLBACK;
SELECT count(*) FROM t;
SELECT b FROM t WHERE c BETWEEN 100 AND 102 ORDER BY a;
