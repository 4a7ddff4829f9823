-- Fixed, deterministic SQLite workload for bench/run's "real programs"
-- timing. Exercises inserts, an index build, sorting, grouping and string
-- functions; prints a few checksums. The row count comes from the CLI:
--   sqlite3 -cmd '.parameter set @n 30000' :memory: < queries.sql
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < @n)
INSERT INTO t SELECT x, printf('name-%06d-%s', x, hex(x * 2654435761 % 4294967296)), x % 97, (x * 7919) % 1000 / 10.0 FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp ON t(grp, val);
SELECT count(*), sum(length(name)) FROM t;
SELECT grp, count(*), round(avg(val), 3) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT count(*) FROM (SELECT name FROM t ORDER BY substr(name, 13) DESC, id);
SELECT group_concat(id) FROM (SELECT id FROM t WHERE name LIKE '%-1%A%' ORDER BY id LIMIT 20);
UPDATE t SET name = upper(name) || '-' || grp WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
