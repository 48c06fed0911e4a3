/*
 * sqlinfo.c against a corpus written by hand: each case is one statement
 * and what a policy must see of it (kind, command tag, tables with their
 * access, functions, flags, and columns where they matter), then multi-
 * statement strings, texts libpg_query rejects, limits, and the cache.
 *
 * Expected values are compact strings, compared whole so that anything
 * missing or extra fails:
 *   tables     "r:users;w:public.orders"   access letter, [schema.]name
 *   functions  "pg_catalog.pg_read_file;dblink"
 *   columns    "u.email@0;w:qty@1;*@-"    [w:][schema.][table.]name@table index
 *   flags      letters, in this order: W has_where, U unfiltered_write,
 *              O opaque, E explain, A explain_analyze, L row_locks,
 *              P copy_program, F copy_file
 * Entries are listed in the order they appear in the text.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "sqlinfo.h"
#include "unit.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Cases leave out the fields they do not check. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct scase {
	const char *sql;
	const char *kind;
	const char *command;
	const char *tables;
	const char *functions;
	const char *flags;
	const char *columns; /* NULL: not checked */
	const char *setting; /* the expected setting; NULL expects none */
};

static const struct scase cases[] = {
    /* SELECT: plain, names, quoting */
    {"SELECT 1", "select", "SELECT", "", "", "", .columns = ""},
    {"SELECT * FROM users", "select", "SELECT", "r:users", "", "", .columns = "*@0"},
    {"SELECT id, email FROM public.users WHERE id = 42", "select", "SELECT", "r:public.users", "",
     "", .columns = "id@0;email@0"},
    {"select ID from USERS", "select", "SELECT", "r:users", "", "", .columns = "id@0"},
    {"SELECT \"My Table\".\"Col\" FROM \"Sch\".\"My Table\"", "select", "SELECT", "r:Sch.My Table",
     "", "", .columns = "My Table.Col@0"},
    {"SELECT * FROM \"Users\" JOIN users ON true", "select", "SELECT", "r:Users;r:users", "", ""},
    {"SELECT u.email FROM users AS u", "select", "SELECT", "r:users", "", "",
     .columns = "u.email@0"},
    /* an alias hides the table's own name */
    {"SELECT users.email FROM users u", "select", "SELECT", "r:users", "", "",
     .columns = "users.email@-"},
    {"SELECT public.users.email FROM public.users", "select", "SELECT", "r:public.users", "", "",
     .columns = "public.users.email@0"},
    {"SELECT s.users.email FROM public.users", "select", "SELECT", "r:public.users", "", "",
     .columns = "s.users.email@-"},
    {"SELECT a.x, b.y FROM a, b WHERE a.id = b.id", "select", "SELECT", "r:a;r:b", "", "",
     .columns = "a.x@0;b.y@1;a.id@0;b.id@1"},
    {"SELECT x FROM a, b", "select", "SELECT", "r:a;r:b", "", "", .columns = "x@-"},
    {"SELECT count(*) FROM orders", "select", "SELECT", "r:orders", "count", "", .columns = ""},
    {"SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC LIMIT 10 OFFSET 5", "select", "SELECT",
     "r:t", "", "", .columns = "a@0;b@0"},
    {"TABLE users", "select", "SELECT", "r:users", "", "", .columns = "*@0"},
    {"VALUES (1, 'a'), (2, 'b')", "select", "SELECT", "", "", "", .columns = ""},
    {"SELECT * FROM (VALUES (1), (2)) AS v(x)", "select", "SELECT", "", "", "", .columns = "*@-"},
    {"SELECT 1 FROM t1 UNION SELECT 2 FROM t2 EXCEPT SELECT 3 FROM t3", "select", "SELECT",
     "r:t1;r:t2;r:t3", "", ""},
    {"SELECT a FROM t1 INTERSECT ALL SELECT a FROM t2 ORDER BY 1", "select", "SELECT", "r:t1;r:t2",
     "", ""},
    {"SELECT * FROM ONLY parent", "select", "SELECT", "r:parent", "", ""},
    {"SELECT * FROM mydb.public.t", "select", "SELECT", "r:public.t", "", ""},
    {"SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END, b::text FROM t", "select", "SELECT", "r:t", "",
     "", .columns = "a@0;b@0"},
    /* row locks */
    {"SELECT * FROM a FOR UPDATE", "select", "SELECT", "r:a", "", "L"},
    {"SELECT * FROM a FOR SHARE OF a SKIP LOCKED", "select", "SELECT", "r:a", "", "L"},
    {"SELECT * FROM a FOR NO KEY UPDATE NOWAIT", "select", "SELECT", "r:a", "", "L"},
    /* functions */
    {"SELECT now(), current_user, pg_catalog.version()", "select", "SELECT", "",
     "now;pg_catalog.version", ""},
    {"SELECT extract(year from ts) FROM events", "select", "SELECT", "r:events",
     "pg_catalog.extract", "", .columns = "ts@0"},
    {"SELECT lower(u.email) FROM users u WHERE lower(u.email) LIKE '%x'", "select", "SELECT",
     "r:users", "lower", "", .columns = "u.email@0"},
    {"SELECT * FROM generate_series(1, 10) g", "select", "SELECT", "", "generate_series", "",
     .columns = "*@-"},
    {"SELECT * FROM pg_read_file('/etc/passwd')", "select", "SELECT", "", "pg_read_file", ""},
    {"SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", "select", "SELECT", "", "dblink",
     ""},
    {"SELECT lo_export(12345, '/tmp/x')", "select", "SELECT", "", "lo_export", ""},
    {"SELECT pg_catalog.pg_read_file('x', 0, 100)", "select", "SELECT", "",
     "pg_catalog.pg_read_file", ""},
    {"SELECT * FROM t WHERE x = (SELECT pg_read_binary_file('y'))", "select", "SELECT", "r:t",
     "pg_read_binary_file", ""},
    {"SELECT \"PG_READ_FILE\"('x')", "select", "SELECT", "", "PG_READ_FILE", ""},
    {"SELECT PG_READ_FILE('x')", "select", "SELECT", "", "pg_read_file", ""},
    {"SELECT upper(dblink_exec('c', 'DROP TABLE t'))", "select", "SELECT", "", "upper;dblink_exec",
     ""},
    {"SELECT * FROM t ORDER BY pg_read_file('x') LIMIT 1", "select", "SELECT", "r:t",
     "pg_read_file", ""},
    {"SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY[1]))", "select", "SELECT", "",
     "generate_series;unnest", ""},
    {"SELECT rank() OVER (PARTITION BY dept ORDER BY sal DESC) FROM emp", "select", "SELECT",
     "r:emp", "rank", "", .columns = "dept@0;sal@0"},
    {"SELECT set_config('search_path', 'evil', false)", "select", "SELECT", "", "set_config", ""},
    {"SELECT pg_notify('jobs', 'x')", "select", "SELECT", "", "pg_notify", ""},
    /* subqueries in FROM, WHERE, the select list, HAVING */
    {"SELECT s.total FROM (SELECT sum(amount) AS total FROM payments) s", "select", "SELECT",
     "r:payments", "sum", "", .columns = "s.total@-;amount@-"},
    {"SELECT * FROM orders WHERE user_id IN (SELECT id FROM users WHERE banned)", "select",
     "SELECT", "r:orders;r:users", "", "", .columns = "*@-;user_id@-;id@-;banned@-"},
    {"SELECT 1 FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.aid = a.id)", "select", "SELECT",
     "r:a;r:b", "", "", .columns = "b.aid@1;a.id@0"},
    {"SELECT (SELECT max(created) FROM logins l WHERE l.uid = u.id) FROM users u", "select",
     "SELECT", "r:logins;r:users", "max", "", .columns = "created@-;l.uid@0;u.id@1"},
    {"SELECT dept, count(*) FROM emp GROUP BY dept HAVING count(*) > (SELECT avg(n) FROM quotas)",
     "select", "SELECT", "r:emp;r:quotas", "count;avg", ""},
    {"SELECT * FROM t WHERE id = ANY(ARRAY[1, 2])", "select", "SELECT", "r:t", "", ""},
    {"SELECT * FROM a WHERE a.x > ALL (SELECT y FROM b) AND NOT EXISTS (SELECT FROM c)", "select",
     "SELECT", "r:a;r:b;r:c", "", ""},
    {"SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.uid = u.id LIMIT 3) x",
     "select", "SELECT", "r:users;r:orders", "", "", .columns = "*@-;o.uid@1;u.id@0"},
    {"SELECT ARRAY(SELECT name FROM tags WHERE tags.pid = p.id) FROM posts p", "select", "SELECT",
     "r:tags;r:posts", "", ""},
    /* joins */
    {"SELECT * FROM a LEFT JOIN b ON a.id = b.aid RIGHT JOIN c USING (id) FULL OUTER JOIN d ON "
     "true CROSS JOIN e NATURAL JOIN f",
     "select", "SELECT", "r:a;r:b;r:c;r:d;r:e;r:f", "", ""},
    {"SELECT a1.x FROM a a1 JOIN a a2 ON a1.p = a2.id", "select", "SELECT", "r:a", "", "",
     .columns = "a1.x@0;a1.p@0;a2.id@0"},
    {"SELECT j.id FROM (a JOIN b USING (id)) AS j", "select", "SELECT", "r:a;r:b", "", "",
     .columns = "j.id@-"},
    {"SELECT * FROM big TABLESAMPLE BERNOULLI (1) REPEATABLE (42)", "select", "SELECT", "r:big", "",
     ""},
    {"SELECT * FROM s1.a JOIN s2.a ON s1.a.id = s2.a.id", "select", "SELECT", "r:s1.a;r:s2.a", "",
     "", .columns = "*@-;s1.a.id@0;s2.a.id@1"},
    /* CTEs */
    {"WITH recent AS (SELECT * FROM orders WHERE ts > now() - interval '1 day') SELECT * FROM "
     "recent",
     "select", "SELECT", "r:orders", "now", "", .columns = "*@-;ts@-"},
    {"WITH a AS (SELECT * FROM t1), b AS (SELECT * FROM a JOIN t2 USING (k)) SELECT * FROM b",
     "select", "SELECT", "r:t1;r:t2", "", ""},
    /* a CTE does not see itself unless RECURSIVE: this t is the table */
    {"WITH t AS (SELECT * FROM t) SELECT * FROM t", "select", "SELECT", "r:t", "", ""},
    /* nor the CTEs after it */
    {"WITH x AS (SELECT * FROM y), y AS (SELECT 1) SELECT * FROM x", "select", "SELECT", "r:y", "",
     ""},
    {"WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "select", "SELECT",
     "", "", ""},
    {"WITH RECURSIVE tree AS (SELECT id, parent FROM nodes WHERE parent IS NULL UNION ALL SELECT "
     "n.id, n.parent FROM nodes n JOIN tree t ON n.parent = t.id) SELECT * FROM tree",
     "select", "SELECT", "r:nodes", "", ""},
    /* a CTE's scope ends with its query */
    {"SELECT * FROM (WITH c AS (SELECT 1) SELECT * FROM c) s, c", "select", "SELECT", "r:c", "",
     ""},
    {"WITH c AS (SELECT id FROM t) SELECT * FROM u WHERE u.id IN (SELECT id FROM c)", "select",
     "SELECT", "r:t;r:u", "", ""},
    {"WITH c AS MATERIALIZED (SELECT * FROM big) SELECT * FROM c", "select", "SELECT", "r:big", "",
     ""},
    /* data-modifying CTEs: their targets are written, whatever the kind */
    {"WITH moved AS (DELETE FROM queue WHERE done RETURNING *) INSERT INTO archive SELECT * FROM "
     "moved",
     "insert", "INSERT", "w:queue;w:archive", "", ""},
    {"WITH d AS (DELETE FROM sessions RETURNING id) SELECT count(*) FROM d", "select", "SELECT",
     "w:sessions", "count", "U"},
    {"WITH u AS (UPDATE accounts SET balance = 0 RETURNING *) SELECT * FROM u", "select", "SELECT",
     "w:accounts", "", "U"},
    {"WITH i AS (INSERT INTO log (msg) VALUES ('x') RETURNING id) SELECT id FROM i", "select",
     "SELECT", "w:log", "", ""},
    {"WITH ids AS (SELECT id FROM stale) UPDATE items SET flag = true WHERE id IN (SELECT id FROM "
     "ids)",
     "update", "UPDATE", "r:stale;w:items", "", "W"},
    {"WITH x AS (SELECT 1) DELETE FROM t USING x", "delete", "DELETE", "w:t", "", "U"},
    /* the target of INSERT is always a table, even with a CTE of its name */
    {"WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM t", "insert", "INSERT", "w:t", "", "",
     .columns = "a@-"},
    {"WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE) SELECT 1", "select",
     "SELECT", "w:t;r:s", "", ""},
    /* INSERT */
    {"INSERT INTO users (email, name) VALUES ('a@b', 'A')", "insert", "INSERT", "w:users", "", "",
     .columns = "w:email@0;w:name@0"},
    {"INSERT INTO public.users VALUES (1)", "insert", "INSERT", "w:public.users", "", ""},
    {"INSERT INTO t SELECT * FROM s", "insert", "INSERT", "w:t;r:s", "", ""},
    {"INSERT INTO t (a) SELECT b FROM s WHERE c > (SELECT max(c) FROM t)", "insert", "INSERT",
     "w:t;r:s", "max", ""},
    {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "insert", "INSERT", "w:t", "", ""},
    {"INSERT INTO t AS x (id, v) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET v = excluded.v + "
     "x.v RETURNING x.id",
     "insert", "INSERT", "w:t", "", "", .columns = "w:id@0;w:v@0;excluded.v@0;x.v@0;x.id@0"},
    {"INSERT INTO t DEFAULT VALUES RETURNING *", "insert", "INSERT", "w:t", "", "",
     .columns = "*@0"},
    {"INSERT INTO t (a) VALUES (nextval('seq'))", "insert", "INSERT", "w:t", "nextval", ""},
    {"INSERT INTO t (a) VALUES ((SELECT secret FROM vault LIMIT 1))", "insert", "INSERT",
     "w:t;r:vault", "", ""},
    {"INSERT INTO \"Audit Log\" (\"When\") VALUES (now())", "insert", "INSERT", "w:Audit Log",
     "now", "", .columns = "w:When@0"},
    /* UPDATE */
    {"UPDATE users SET email = 'x' WHERE id = 1", "update", "UPDATE", "w:users", "", "W",
     .columns = "w:email@0;id@0"},
    {"UPDATE users SET active = false", "update", "UPDATE", "w:users", "", "U"},
    {"UPDATE t SET a = s.a FROM s WHERE t.id = s.id", "update", "UPDATE", "w:t;r:s", "", "W",
     .columns = "w:a@0;s.a@1;t.id@0;s.id@1"},
    {"UPDATE t SET (a, b) = (SELECT x, y FROM src WHERE src.id = t.id) WHERE t.k = 1", "update",
     "UPDATE", "w:t;r:src", "", "W"},
    {"UPDATE ONLY t AS x SET v = v + 1 WHERE x.id = 3 RETURNING x.v", "update", "UPDATE", "w:t", "",
     "W", .columns = "w:v@0;x.id@0;x.v@0"},
    {"UPDATE t SET a = 1 WHERE CURRENT OF cur", "update", "UPDATE", "w:t", "", "W"},
    {"UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id)", "update", "UPDATE", "w:t;r:u", "",
     "U"},
    {"UPDATE s.accounts SET balance = balance - 100 WHERE id = 7 RETURNING balance", "update",
     "UPDATE", "w:s.accounts", "", "W", .columns = "w:balance@0;id@0"},
    /* DELETE */
    {"DELETE FROM t WHERE id = 1", "delete", "DELETE", "w:t", "", "W"},
    {"DELETE FROM t", "delete", "DELETE", "w:t", "", "U"},
    {"DELETE FROM t USING u WHERE t.uid = u.id AND u.banned", "delete", "DELETE", "w:t;r:u", "",
     "W"},
    {"DELETE FROM s.t AS x WHERE x.a IN (SELECT a FROM s.t2) RETURNING *", "delete", "DELETE",
     "w:s.t;r:s.t2", "", "W"},
    {"DELETE FROM t WHERE CURRENT OF c", "delete", "DELETE", "w:t", "", "W"},
    {"DELETE FROM log WHERE ts < now() - interval '30 days'", "delete", "DELETE", "w:log", "now",
     "W"},
    /* MERGE */
    {"MERGE INTO stock s USING deliveries d ON s.item = d.item WHEN MATCHED THEN UPDATE SET qty = "
     "s.qty + d.qty WHEN NOT MATCHED THEN INSERT (item, qty) VALUES (d.item, d.qty)",
     "merge", "MERGE", "w:stock;r:deliveries", "", "",
     .columns = "s.item@0;d.item@1;w:qty@0;s.qty@0;d.qty@1;w:item@0"},
    {"MERGE INTO t USING (SELECT * FROM src WHERE ok) AS s ON t.id = s.id WHEN MATCHED AND s.del "
     "THEN DELETE WHEN MATCHED THEN DO NOTHING",
     "merge", "MERGE", "w:t;r:src", "", ""},
    {"MERGE INTO public.t USING public.s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES "
     "(s.id)",
     "merge", "MERGE", "w:public.t;r:public.s", "", ""},
    /* DDL */
    {"CREATE TABLE t (id int PRIMARY KEY, email text NOT NULL)", "ddl", "CREATE TABLE", "w:t", "",
     ""},
    {"CREATE TABLE IF NOT EXISTS s.t (LIKE s.template INCLUDING ALL)", "ddl", "CREATE TABLE",
     "w:s.t;w:s.template", "", ""},
    {"CREATE TABLE child (x int REFERENCES parent(id)) INHERITS (base)", "ddl", "CREATE TABLE",
     "w:child;w:parent;w:base", "", ""},
    {"CREATE TEMP TABLE tmp AS SELECT * FROM users WHERE active", "ddl", "CREATE TABLE AS",
     "w:tmp;r:users", "", ""},
    {"CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM orders", "ddl",
     "CREATE MATERIALIZED VIEW", "w:mv;r:orders", "count", ""},
    {"CREATE VIEW v AS SELECT id FROM users", "ddl", "CREATE VIEW", "w:v;r:users", "", ""},
    {"CREATE OR REPLACE VIEW s.v AS SELECT * FROM s.a JOIN s.b USING (id)", "ddl", "CREATE VIEW",
     "w:s.v;r:s.a;r:s.b", "", ""},
    {"CREATE INDEX CONCURRENTLY idx ON users (lower(email)) WHERE active", "ddl", "CREATE INDEX",
     "w:users", "lower", ""},
    {"CREATE UNIQUE INDEX ON s.t (a, b)", "ddl", "CREATE INDEX", "w:s.t", "", ""},
    {"DROP TABLE users", "ddl", "DROP TABLE", "w:users", "", ""},
    {"DROP TABLE IF EXISTS a, s.b CASCADE", "ddl", "DROP TABLE", "w:a;w:s.b", "", ""},
    {"DROP TABLE \"Weird.Name\"", "ddl", "DROP TABLE", "w:Weird.Name", "", ""},
    {"DROP VIEW v", "ddl", "DROP VIEW", "w:v", "", ""},
    {"DROP MATERIALIZED VIEW mv", "ddl", "DROP MATERIALIZED VIEW", "w:mv", "", ""},
    {"DROP INDEX CONCURRENTLY s.idx", "ddl", "DROP INDEX", "w:s.idx", "", ""},
    {"DROP SEQUENCE seq", "ddl", "DROP SEQUENCE", "w:seq", "", ""},
    {"DROP FOREIGN TABLE ft", "ddl", "DROP FOREIGN TABLE", "w:ft", "", ""},
    {"DROP SCHEMA app CASCADE", "ddl", "DROP SCHEMA", "", "", ""},
    {"DROP FUNCTION f(int)", "ddl", "DROP FUNCTION", "", "", ""},
    {"DROP DATABASE prod", "ddl", "DROP DATABASE", "", "", ""},
    {"DROP EXTENSION dblink", "ddl", "DROP EXTENSION", "", "", ""},
    {"DROP TYPE mood", "ddl", "DROP TYPE", "", "", ""},
    {"DROP TRIGGER trg ON s.t", "ddl", "DROP TRIGGER", "w:s.t", "", ""},
    {"DROP POLICY p ON accounts", "ddl", "DROP POLICY", "w:accounts", "", ""},
    {"DROP TEXT SEARCH CONFIGURATION cfg", "ddl", "DROP TEXT SEARCH CONFIGURATION", "", "", ""},
    {"ALTER TABLE users ADD COLUMN age int", "ddl", "ALTER TABLE", "w:users", "", ""},
    {"ALTER TABLE ONLY s.t DROP CONSTRAINT c, ALTER COLUMN x SET NOT NULL", "ddl", "ALTER TABLE",
     "w:s.t", "", ""},
    {"ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (uid) REFERENCES users (id)", "ddl",
     "ALTER TABLE", "w:t;w:users", "", ""},
    {"ALTER TABLE t RENAME TO t2", "ddl", "ALTER TABLE", "w:t", "", ""},
    {"ALTER TABLE t RENAME COLUMN a TO b", "ddl", "ALTER TABLE", "w:t", "", ""},
    {"ALTER VIEW v RENAME TO v2", "ddl", "ALTER VIEW", "w:v", "", ""},
    {"ALTER TABLE t SET SCHEMA archive", "ddl", "ALTER TABLE", "w:t", "", ""},
    {"ALTER TABLE t OWNER TO bob", "ddl", "ALTER TABLE", "w:t", "", ""},
    {"ALTER INDEX idx RENAME TO idx2", "ddl", "ALTER INDEX", "w:idx", "", ""},
    {"ALTER MATERIALIZED VIEW mv SET SCHEMA x", "ddl", "ALTER MATERIALIZED VIEW", "w:mv", "", ""},
    {"ALTER SEQUENCE seq RESTART WITH 1", "ddl", "ALTER SEQUENCE", "w:seq", "", ""},
    {"ALTER FUNCTION f() OWNER TO bob", "ddl", "ALTER FUNCTION", "", "", ""},
    {"ALTER FUNCTION f() SECURITY DEFINER", "ddl", "ALTER FUNCTION", "", "", ""},
    {"ALTER TYPE mood ADD VALUE 'happy'", "ddl", "ALTER TYPE", "", "", ""},
    {"ALTER TYPE pair ADD ATTRIBUTE c int", "ddl", "ALTER TYPE", "", "", ""},
    {"ALTER TABLE t ATTACH PARTITION p FOR VALUES IN (1)", "ddl", "ALTER TABLE", "w:t;w:p", "", ""},
    {"CREATE TABLE t (a int GENERATED ALWAYS AS (length(pg_read_file('x'))) STORED)", "ddl",
     "CREATE TABLE", "w:t", "length;pg_read_file", ""},
    {"ALTER TRIGGER trg ON s.t RENAME TO trg2", "ddl", "ALTER TRIGGER", "w:s.t", "", ""},
    {"CREATE LANGUAGE plperl", "ddl", "CREATE EXTENSION", "", "", ""},
    {"CREATE SEQUENCE s.seq", "ddl", "CREATE SEQUENCE", "w:s.seq", "", ""},
    {"CREATE SCHEMA app", "ddl", "CREATE SCHEMA", "", "", ""},
    {"CREATE SCHEMA app CREATE TABLE app_t (id int)", "ddl", "CREATE SCHEMA", "w:app_t", "", ""},
    {"CREATE FUNCTION add(a int, b int) RETURNS int AS 'SELECT a + b' LANGUAGE sql", "ddl",
     "CREATE FUNCTION", "", "", "O"},
    {"CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN (SELECT count(*) FROM t)", "ddl",
     "CREATE FUNCTION", "r:t", "count", ""},
    {"CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; END $$", "ddl",
     "CREATE PROCEDURE", "", "", "O"},
    {"CREATE OR REPLACE FUNCTION evil() RETURNS void AS 'libc.so.6', 'system' LANGUAGE c", "ddl",
     "CREATE FUNCTION", "", "", "O"},
    {"CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit()", "ddl",
     "CREATE TRIGGER", "w:t", "", ""},
    {"CREATE EXTENSION IF NOT EXISTS dblink", "ddl", "CREATE EXTENSION", "", "", ""},
    {"CREATE TYPE mood AS ENUM ('sad', 'ok')", "ddl", "CREATE TYPE", "", "", ""},
    {"CREATE TYPE pair AS (a int, b int)", "ddl", "CREATE TYPE", "", "", ""},
    {"CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "ddl", "CREATE DOMAIN", "", "", ""},
    {"CREATE AGGREGATE myagg (int) (sfunc = int4pl, stype = int)", "ddl", "CREATE AGGREGATE", "",
     "", ""},
    {"CREATE POLICY p ON accounts USING (owner = current_user)", "ddl", "CREATE POLICY",
     "w:accounts", "", ""},
    {"CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", "ddl", "CREATE RULE", "w:t", "", ""},
    {"CREATE STATISTICS st ON a, b FROM t", "ddl", "CREATE STATISTICS", "w:t", "", ""},
    {"CREATE PUBLICATION pub FOR TABLE t", "ddl", "CREATE PUBLICATION", "w:t", "", ""},
    {"COMMENT ON TABLE s.t IS 'x'", "ddl", "COMMENT", "w:s.t", "", ""},
    {"COMMENT ON COLUMN s.t.c IS 'x'", "ddl", "COMMENT", "w:s.t", "", ""},
    {"COMMENT ON FUNCTION f() IS 'x'", "ddl", "COMMENT", "", "", ""},
    {"TRUNCATE orders", "ddl", "TRUNCATE TABLE", "w:orders", "", ""},
    {"TRUNCATE TABLE ONLY a, s.b RESTART IDENTITY CASCADE", "ddl", "TRUNCATE TABLE", "w:a;w:s.b",
     "", ""},
    {"GRANT SELECT ON users TO analyst", "ddl", "GRANT", "w:users", "", ""},
    {"GRANT ALL ON ALL TABLES IN SCHEMA public TO app", "ddl", "GRANT", "", "", ""},
    {"REVOKE INSERT, UPDATE ON s.t FROM PUBLIC", "ddl", "REVOKE", "w:s.t", "", ""},
    {"GRANT EXECUTE ON FUNCTION f(int) TO bob", "ddl", "GRANT", "", "", ""},
    {"GRANT admin TO bob", "ddl", "GRANT ROLE", "", "", ""},
    {"REVOKE admin FROM bob", "ddl", "REVOKE ROLE", "", "", ""},
    {"CREATE ROLE analyst LOGIN PASSWORD 'x'", "ddl", "CREATE ROLE", "", "", ""},
    {"CREATE USER bob SUPERUSER", "ddl", "CREATE ROLE", "", "", ""},
    {"ALTER ROLE bob WITH SUPERUSER", "ddl", "ALTER ROLE", "", "", ""},
    {"ALTER ROLE bob SET search_path = x", "ddl", "ALTER ROLE", "", "", ""},
    {"DROP ROLE IF EXISTS bob, carol", "ddl", "DROP ROLE", "", "", ""},
    {"DROP USER bob", "ddl", "DROP ROLE", "", "", ""},
    {"ALTER SYSTEM SET max_connections = 10", "ddl", "ALTER SYSTEM", "", "", ""},
    {"CREATE DATABASE x", "ddl", "CREATE DATABASE", "", "", ""},
    {"ALTER DATABASE x SET work_mem = '1GB'", "ddl", "ALTER DATABASE", "", "", ""},
    {"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "ddl", "REFRESH MATERIALIZED VIEW", "w:mv", "",
     ""},
    {"CLUSTER t USING idx", "ddl", "CLUSTER", "w:t", "", ""},
    {"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ro", "ddl", "ALTER DEFAULT PRIVILEGES", "",
     "", ""},
    {"SELECT * INTO backup FROM users", "ddl", "SELECT INTO", "w:backup;r:users", "", ""},
    /* COPY */
    {"COPY users TO STDOUT", "copy", "COPY", "r:users", "", "", .columns = "*@0"},
    {"COPY users (id, email) TO STDOUT WITH (FORMAT csv)", "copy", "COPY", "r:users", "", "",
     .columns = "id@0;email@0"},
    {"COPY s.t FROM STDIN", "copy", "COPY", "w:s.t", "", "", .columns = "w:*@0"},
    {"COPY t (a, b) FROM STDIN WHERE a > 0", "copy", "COPY", "w:t", "", "",
     .columns = "w:a@0;w:b@0"},
    {"COPY (SELECT * FROM users WHERE admin) TO STDOUT", "copy", "COPY", "r:users", "", ""},
    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", "copy", "COPY", "w:t", "", "U"},
    {"COPY t TO '/tmp/t.csv'", "copy", "COPY", "r:t", "", "F"},
    {"COPY t FROM '/etc/passwd'", "copy", "COPY", "w:t", "", "F"},
    {"COPY t TO PROGRAM 'curl http://x'", "copy", "COPY", "r:t", "", "P"},
    {"COPY (SELECT pg_read_file('/etc/shadow')) TO STDOUT", "copy", "COPY", "", "pg_read_file", ""},
    /* transactions */
    {"BEGIN", "transaction", "BEGIN", "", "", ""},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", "transaction", "BEGIN", "", "", ""},
    {"START TRANSACTION", "transaction", "START TRANSACTION", "", "", ""},
    {"COMMIT", "transaction", "COMMIT", "", "", ""},
    {"END", "transaction", "COMMIT", "", "", ""},
    {"COMMIT AND CHAIN", "transaction", "COMMIT", "", "", ""},
    {"ROLLBACK", "transaction", "ROLLBACK", "", "", ""},
    {"ABORT", "transaction", "ROLLBACK", "", "", ""},
    {"SAVEPOINT sp1", "transaction", "SAVEPOINT", "", "", ""},
    {"RELEASE SAVEPOINT sp1", "transaction", "RELEASE", "", "", ""},
    {"ROLLBACK TO SAVEPOINT sp1", "transaction", "ROLLBACK", "", "", ""},
    {"PREPARE TRANSACTION 'tx1'", "transaction", "PREPARE TRANSACTION", "", "", ""},
    {"COMMIT PREPARED 'tx1'", "transaction", "COMMIT PREPARED", "", "", ""},
    {"ROLLBACK PREPARED 'tx1'", "transaction", "ROLLBACK PREPARED", "", "", ""},
    /* SET, RESET, SHOW, DISCARD */
    {"SET search_path TO app, public", "set", "SET", "", "", "", .setting = "search_path"},
    {"SET LOCAL statement_timeout = '5s'", "set", "SET", "", "", "",
     .setting = "statement_timeout"},
    {"SET ROLE admin", "set", "SET", "", "", "", .setting = "role"},
    {"SET SESSION AUTHORIZATION postgres", "set", "SET", "", "", "",
     .setting = "session_authorization"},
    {"SET TIME ZONE 'UTC'", "set", "SET", "", "", "", .setting = "timezone"},
    {"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "set", "SET", "", "", "",
     .setting = "transaction"},
    /* parameter names are case-insensitive: quoting does not hide one */
    {"SET \"ROLE\" TO admin", "set", "SET", "", "", "", .setting = "role"},
    {"RESET \"Search_Path\"", "set", "RESET", "", "", "", .setting = "search_path"},
    {"RESET ROLE", "set", "RESET", "", "", "", .setting = "role"},
    {"RESET ALL", "set", "RESET", "", "", ""},
    {"SET CONSTRAINTS ALL DEFERRED", "set", "SET CONSTRAINTS", "", "", ""},
    {"SET CONSTRAINTS s.c1, c2 IMMEDIATE", "set", "SET CONSTRAINTS", "", "", ""},
    {"DISCARD ALL", "set", "DISCARD ALL", "", "", ""},
    {"DISCARD TEMP", "set", "DISCARD TEMP", "", "", ""},
    {"SHOW search_path", "utility", "SHOW", "", "", "", .setting = "search_path"},
    {"SHOW ALL", "utility", "SHOW", "", "", "", .setting = "all"},
    {"SHOW TRANSACTION ISOLATION LEVEL", "utility", "SHOW", "", "", "",
     .setting = "transaction_isolation"},
    /* CALL, DO, PREPARE, EXECUTE, DEALLOCATE */
    {"CALL process_queue(10)", "call", "CALL", "", "process_queue", "O"},
    {"CALL s.p(pg_read_file('x'))", "call", "CALL", "", "s.p;pg_read_file", "O"},
    {"DO $$ BEGIN PERFORM 1; END $$", "do", "DO", "", "", "O"},
    {"DO LANGUAGE plpgsql $body$ BEGIN DROP TABLE t; END $body$", "do", "DO", "", "", "O"},
    {"PREPARE q (int) AS SELECT * FROM users WHERE id = $1", "utility", "PREPARE", "r:users", "",
     ""},
    {"PREPARE d AS DELETE FROM users", "utility", "PREPARE", "w:users", "", "U"},
    {"EXECUTE q (1)", "utility", "EXECUTE", "", "", "O"},
    {"EXECUTE q (pg_read_file('x'))", "utility", "EXECUTE", "", "pg_read_file", "O"},
    {"DEALLOCATE q", "utility", "DEALLOCATE", "", "", ""},
    {"DEALLOCATE PREPARE q", "utility", "DEALLOCATE", "", "", ""},
    {"DEALLOCATE ALL", "utility", "DEALLOCATE ALL", "", "", ""},
    /* EXPLAIN: only ANALYZE runs the statement */
    {"EXPLAIN SELECT * FROM users", "utility", "EXPLAIN", "r:users", "", "E"},
    {"EXPLAIN DELETE FROM users", "utility", "EXPLAIN", "r:users", "", "E"},
    {"EXPLAIN ANALYZE DELETE FROM users WHERE id = 1", "delete", "EXPLAIN", "w:users", "", "WEA"},
    {"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", "update", "EXPLAIN", "w:t", "", "UEA"},
    {"EXPLAIN (ANALYZE false) DELETE FROM t", "utility", "EXPLAIN", "r:t", "", "E"},
    {"EXPLAIN (ANALYZE off, COSTS off) SELECT 1", "utility", "EXPLAIN", "", "", "E"},
    {"EXPLAIN (ANALYZE 0) SELECT 1", "utility", "EXPLAIN", "", "", "E"},
    {"EXPLAIN (ANALYZE 1) DELETE FROM t WHERE a = 1", "delete", "EXPLAIN", "w:t", "", "WEA"},
    {"EXPLAIN (ANALYZE true, ANALYZE false) INSERT INTO t VALUES (1)", "utility", "EXPLAIN", "r:t",
     "", "E"},
    {"EXPLAIN (FORMAT json, ANALYZE) SELECT * FROM t", "select", "EXPLAIN", "r:t", "", "EA"},
    {"EXPLAIN ANALYZE EXECUTE q(1)", "utility", "EXPLAIN", "", "", "OEA"},
    {"EXPLAIN EXECUTE q(1)", "utility", "EXPLAIN", "", "", "E"},
    {"EXPLAIN ANALYZE CREATE TABLE x AS SELECT * FROM t", "ddl", "EXPLAIN", "w:x;r:t", "", "EA"},
    {"EXPLAIN ANALYZE SELECT pg_read_file('x')", "select", "EXPLAIN", "", "pg_read_file", "EA"},
    /* a prepared statement run by CREATE TABLE AS is as opaque as EXECUTE */
    {"CREATE TABLE x AS EXECUTE q(1)", "ddl", "CREATE TABLE AS", "w:x", "", "O"},
    /* utility */
    {"LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE", "utility", "LOCK TABLE", "w:accounts", "", ""},
    {"LOCK accounts IN ACCESS SHARE MODE", "utility", "LOCK TABLE", "r:accounts", "", ""},
    {"LOCK TABLE a, s.b IN ROW EXCLUSIVE MODE NOWAIT", "utility", "LOCK TABLE", "w:a;w:s.b", "",
     ""},
    {"VACUUM", "utility", "VACUUM", "", "", ""},
    {"VACUUM (FULL, ANALYZE) s.t (a, b)", "utility", "VACUUM", "w:s.t", "", ""},
    {"VACUUM ANALYZE a, b", "utility", "VACUUM", "w:a;w:b", "", ""},
    {"ANALYZE t", "utility", "ANALYZE", "w:t", "", ""},
    {"REINDEX TABLE t", "utility", "REINDEX", "w:t", "", ""},
    {"CHECKPOINT", "utility", "CHECKPOINT", "", "", ""},
    {"LISTEN jobs", "utility", "LISTEN", "", "", ""},
    {"UNLISTEN *", "utility", "UNLISTEN", "", "", ""},
    {"NOTIFY jobs, 'payload'", "utility", "NOTIFY", "", "", ""},
    {"LOAD 'auto_explain'", "utility", "LOAD", "", "", "O"},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM big", "select", "DECLARE CURSOR", "r:big", "",
     ""},
    {"FETCH 10 FROM c", "utility", "FETCH", "", "", ""},
    {"MOVE NEXT IN c", "utility", "MOVE", "", "", ""},
    {"CLOSE c", "utility", "CLOSE CURSOR", "", "", ""},
    {"CLOSE ALL", "utility", "CLOSE CURSOR ALL", "", "", ""},
    /* comments and dollar quoting: one statement each */
    {"-- leading comment\nSELECT 1", "select", "SELECT", "", "", ""},
    {"/* block */ SELECT /* inner */ * FROM t /* trailing */", "select", "SELECT", "r:t", "", ""},
    {"/* outer /* nested; */ still comment; */ SELECT 1 FROM t", "select", "SELECT", "r:t", "", ""},
    {"SELECT $$; DROP TABLE users; $$ AS x", "select", "SELECT", "", "", ""},
    {"SELECT $tag$ it's; $$ still; $tag$ FROM t", "select", "SELECT", "r:t", "", ""},
    {"SELECT 'a;b', \"semi;colon\" FROM t", "select", "SELECT", "r:t", "", ""},
    {"SELECT 1 -- ; DROP TABLE users", "select", "SELECT", "", "", ""},
    {"SELECT E'\\'; DROP TABLE t; --'", "select", "SELECT", "", "", ""},
    {"SELECT 'it''s; DROP TABLE t' FROM u", "select", "SELECT", "r:u", "", ""},
    {"SELECT 1;", "select", "SELECT", "", "", ""},
    {";; SELECT 1 ;;", "select", "SELECT", "", "", ""},
    /* identifiers that JSON escapes */
    {"SELECT * FROM \"a\"\"b\"", "select", "SELECT", "r:a\"b", "", ""},
    {"SELECT * FROM \"a\\b\"", "select", "SELECT", "r:a\\b", "", ""},
    {"SELECT * FROM \"a\tb\"", "select", "SELECT", "r:a\tb", "", ""},
    {"SELECT * FROM \"<x>&\"", "select", "SELECT", "r:<x>&", "", ""},
    {"SELECT * FROM \"\xc3\xbc"
     "n\xc3\xaf"
     "code\"",
     "select", "SELECT",
     "r:\xc3\xbc"
     "n\xc3\xaf"
     "code",
     "", ""},
    {"SELECT * FROM U&\"d\\0061t\\+000061\"", "select", "SELECT", "r:data", "", ""},
    {"SELECT * FROM \"select\"", "select", "SELECT", "r:select", "", ""},
};

static void append(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);
	snprintf(buf + n, size - n, "%s", s);
}

static void fmt_tables(const struct sqlinfo_stmt *st, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < st->n_tables; i++) {
		const struct sqlinfo_table *t = &st->tables[i];
		if (i)
			append(buf, size, ";");
		append(buf, size, t->access == SQLINFO_WRITE ? "w:" : "r:");
		if (t->schema) {
			append(buf, size, t->schema);
			append(buf, size, ".");
		}
		append(buf, size, t->name);
	}
}

static void fmt_functions(const struct sqlinfo_stmt *st, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < st->n_functions; i++) {
		if (i)
			append(buf, size, ";");
		append(buf, size, st->functions[i].qualified);
	}
}

static void fmt_columns(const struct sqlinfo_stmt *st, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < st->n_columns; i++) {
		const struct sqlinfo_column *c = &st->columns[i];
		char idx[16];
		if (i)
			append(buf, size, ";");
		if (c->access == SQLINFO_WRITE)
			append(buf, size, "w:");
		if (c->schema) {
			append(buf, size, c->schema);
			append(buf, size, ".");
		}
		if (c->table) {
			append(buf, size, c->table);
			append(buf, size, ".");
		}
		append(buf, size, c->name);
		if (c->table_index >= 0)
			snprintf(idx, sizeof(idx), "@%d", c->table_index);
		else
			snprintf(idx, sizeof(idx), "@-");
		append(buf, size, idx);
	}
}

/*
 * Which reads are plain output columns (strict masking): the names of the
 * derived ones, as "[table.]name" joined by ';', in the order of the text.
 */
static const struct {
	const char *sql;
	const char *derived;
} derived_cases[] = {
    /* plain output columns, also aliased, starred, under DECLARE and PREPARE */
    {"SELECT email FROM customers", ""},
    {"SELECT email AS e, c.name FROM customers c WHERE id = 1", "id"},
    {"SELECT * FROM customers", ""},
    {"SELECT c.* FROM customers c LIMIT 5", ""},
    {"DECLARE k CURSOR FOR SELECT email FROM customers", ""},
    {"PREPARE p AS SELECT email FROM customers WHERE id = $1", "id"},
    {"SELECT DISTINCT email FROM customers", ""},
    /* expressions, casts, functions, aggregates, windows */
    {"SELECT upper(email) FROM customers", "email"},
    {"SELECT email || '' FROM customers", "email"},
    {"SELECT email::text FROM customers", "email"},
    {"SELECT string_agg(email, ',') FROM customers", "email"},
    {"SELECT id, row_number() OVER (ORDER BY email) FROM customers", "email"},
    /* predicates and orderings, by name, position and output alias */
    {"SELECT id FROM customers WHERE email LIKE 'a%'", "email"},
    {"SELECT email FROM customers ORDER BY email", "email"},
    {"SELECT email AS e FROM customers ORDER BY e", "email;e"},
    {"SELECT id, email FROM customers ORDER BY 1", "id;email"},
    {"SELECT email, count(*) FROM customers GROUP BY 1", "email"},
    {"SELECT DISTINCT ON (email) id FROM customers", "email"},
    {"SELECT c.id FROM customers c JOIN orders o ON o.email = c.email", "o.email;c.email"},
    /* whole rows */
    {"SELECT c FROM customers c", "c.*"},
    {"SELECT row_to_json(c) FROM customers c", "c;c.*"},
    {"SELECT (c).email FROM customers c", "c;c.*"},
    /* propagation: subqueries, CTEs, set operations, other statements */
    {"SELECT x FROM (SELECT email AS x FROM customers) s", "email"},
    {"WITH w AS (SELECT email FROM customers) SELECT email FROM w", "email"},
    {"SELECT (SELECT email FROM customers LIMIT 1)", "email"},
    {"SELECT email FROM customers UNION SELECT 'x'", "email"},
    {"SELECT * FROM customers UNION ALL SELECT * FROM customers", "*"},
    {"DELETE FROM customers RETURNING email", "email"},
    {"UPDATE customers SET email = lower(email) WHERE id = 1", "email;id"},
    {"INSERT INTO other SELECT email FROM customers", "email"},
    {"CREATE VIEW v AS SELECT email FROM customers", "email"},
    {"SELECT email INTO t2 FROM customers", "email"},
    {"COPY customers TO STDOUT", "*"},
    {"COPY (SELECT email FROM customers) TO STDOUT", "email"},
    {"EXPLAIN ANALYZE SELECT id FROM customers WHERE email = 'x'", "email"},
    /* writes are not reads */
    {"INSERT INTO customers (email) VALUES ('a@b')", ""},
    {"COPY customers FROM STDIN", ""},
};

static void test_derived(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(derived_cases); i++) {
		struct sqlinfo *info =
		    sqlinfo_analyse(derived_cases[i].sql, strlen(derived_cases[i].sql));
		char got[512] = "";
		CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
		for (size_t k = 0; info->n_stmts && k < info->stmts[0].n_columns; k++) {
			const struct sqlinfo_column *c = &info->stmts[0].columns[k];
			if (!c->derived)
				continue;
			if (got[0])
				append(got, sizeof(got), ";");
			if (c->table) {
				append(got, sizeof(got), c->table);
				append(got, sizeof(got), ".");
			}
			append(got, sizeof(got), c->name);
		}
		CHECK_STR(got, derived_cases[i].derived);
		if (strcmp(got, derived_cases[i].derived) != 0)
			fprintf(stderr, "  ^ %s\n", derived_cases[i].sql);
		sqlinfo_free(info);
	}
}

static void fmt_flags(const struct sqlinfo_stmt *st, char *buf)
{
	char *p = buf;
	if (st->has_where)
		*p++ = 'W';
	if (st->unfiltered_write)
		*p++ = 'U';
	if (st->opaque)
		*p++ = 'O';
	if (st->explain)
		*p++ = 'E';
	if (st->explain_analyze)
		*p++ = 'A';
	if (st->row_locks)
		*p++ = 'L';
	if (st->copy_program)
		*p++ = 'P';
	if (st->copy_file)
		*p++ = 'F';
	*p = '\0';
}

/* Expected flags may be written in any order. */
static bool same_flags(const char *want, const char *got)
{
	if (strlen(want) != strlen(got))
		return false;
	for (const char *c = want; *c; c++)
		if (!strchr(got, *c))
			return false;
	return true;
}

static void check_case(const struct scase *c)
{
	struct sqlinfo *info = sqlinfo_analyse(c->sql, strlen(c->sql));
	char got[1024];
	if (info->error != SQLINFO_OK || info->n_stmts != 1) {
		fprintf(stderr, "case %s: error %d (%s), %zu statements\n", c->sql, info->error,
		        info->error_message ? info->error_message : "", info->n_stmts);
		unit_failed++;
		sqlinfo_free(info);
		return;
	}
	const struct sqlinfo_stmt *st = &info->stmts[0];
	int before = unit_failed;
	CHECK_STR(sqlinfo_kind_name(st->kind), c->kind);
	CHECK_STR(st->command, c->command);
	fmt_tables(st, got, sizeof(got));
	CHECK_STR(got, c->tables);
	CHECK(st->writes == (strncmp(c->tables, "w:", 2) == 0 || strstr(c->tables, ";w:") != NULL));
	fmt_functions(st, got, sizeof(got));
	CHECK_STR(got, c->functions);
	fmt_flags(st, got);
	if (!same_flags(c->flags, got)) {
		fprintf(stderr, "flags \"%s\" != \"%s\"\n", got, c->flags);
		unit_failed++;
	} else {
		unit_passed++;
	}
	if (c->columns) {
		fmt_columns(st, got, sizeof(got));
		CHECK_STR(got, c->columns);
	}
	if (c->setting)
		CHECK_STR(st->setting, c->setting);
	else
		CHECK(st->setting == NULL);
	/* one statement: its text is the whole input */
	CHECK(!st->multi && !info->multi);
	CHECK(st->sql_len == strlen(c->sql) && strcmp(st->sql, c->sql) == 0);
	CHECK(st->fingerprint && strlen(st->fingerprint) == 16 &&
	      strspn(st->fingerprint, "0123456789abcdef") == 16);
	if (unit_failed != before)
		fprintf(stderr, "  ^ in case: %s\n", c->sql);
	sqlinfo_free(info);
}

/* Strings holding several statements: each one's own text and tag. */
struct mcase {
	const char *sql;
	size_t n;
	const char *sql_of[4];
	size_t offset_of[4];
	const char *command_of[4];
	const char *tables_of[4];
};

static const struct mcase multi_cases[] = {
    {"SELECT 1; SELECT 2", 2, {"SELECT 1", "SELECT 2"}, {0, 10}, {"SELECT", "SELECT"}, {"", ""}},
    {"BEGIN; UPDATE t SET a = 1 WHERE id = 2; COMMIT;",
     3,
     {"BEGIN", "UPDATE t SET a = 1 WHERE id = 2", "COMMIT"},
     {0, 7, 40},
     {"BEGIN", "UPDATE", "COMMIT"},
     {"", "w:t", ""}},
    {"SELECT 'a;b'; SELECT $$;$$",
     2,
     {"SELECT 'a;b'", "SELECT $$;$$"},
     {0, 14},
     {"SELECT", "SELECT"},
     {"", ""}},
    {"/* c; */ SELECT 1; -- x;\nDROP TABLE t",
     2,
     {"/* c; */ SELECT 1", "-- x;\nDROP TABLE t"},
     {0, 19},
     {"SELECT", "DROP TABLE"},
     {"", "w:t"}},
    {"SET search_path = x; SELECT * FROM t",
     2,
     {"SET search_path = x", "SELECT * FROM t"},
     {0, 21},
     {"SET", "SELECT"},
     {"", "r:t"}},
    {"INSERT INTO a VALUES (1);DELETE FROM b",
     2,
     {"INSERT INTO a VALUES (1)", "DELETE FROM b"},
     {0, 25},
     {"INSERT", "DELETE"},
     {"w:a", "w:b"}},
    {"SELECT 1;;\n\n  SELECT * FROM \"x;y\" ; ",
     2,
     {"SELECT 1", "SELECT * FROM \"x;y\""},
     {0, 14},
     {"SELECT", "SELECT"},
     {"", "r:x;y"}},
    {"DO $$ BEGIN END $$; CALL p(); SELECT 1; COPY t FROM STDIN",
     4,
     {"DO $$ BEGIN END $$", "CALL p()", "SELECT 1", "COPY t FROM STDIN"},
     {0, 20, 30, 40},
     {"DO", "CALL", "SELECT", "COPY"},
     {"", "", "", "w:t"}},
};

static void check_multi(const struct mcase *m)
{
	struct sqlinfo *info = sqlinfo_analyse(m->sql, strlen(m->sql));
	char got[512];
	CHECK(info->error == SQLINFO_OK);
	CHECK(info->multi);
	CHECK(info->n_stmts == m->n);
	for (size_t i = 0; i < info->n_stmts && i < m->n; i++) {
		const struct sqlinfo_stmt *st = &info->stmts[i];
		CHECK_STR(st->sql, m->sql_of[i]);
		CHECK(st->sql_len == strlen(m->sql_of[i]));
		CHECK(st->offset == m->offset_of[i]);
		CHECK(st->multi);
		CHECK_STR(st->command, m->command_of[i]);
		fmt_tables(st, got, sizeof(got));
		CHECK_STR(got, m->tables_of[i]);
	}
	sqlinfo_free(info);
}

/* Whole-string failures: nothing of the string may be reported. */
struct ecase {
	const char *sql;
	enum sqlinfo_error error;
	int position; /* -1: not checked */
	const char *message_part;
};

static const struct ecase error_cases[] = {
    {"SELEC 1", SQLINFO_ERR_SYNTAX, 1, "syntax error at or near \"SELEC\""},
    {"SELECT 1; SELEC 2", SQLINFO_ERR_SYNTAX, 11, "syntax error at or near \"SELEC\""},
    {"SELECT 1; SELECT * FROM", SQLINFO_ERR_SYNTAX, 24, "syntax error at end of input"},
    {"DROP TABLE users; SELEC", SQLINFO_ERR_SYNTAX, 19, "syntax error"},
    {"SELECT 1; foo", SQLINFO_ERR_SYNTAX, 11, "syntax error at or near \"foo\""},
    {"BEGIN; DELETE FROM t; COMMIT; ROLLBAK", SQLINFO_ERR_SYNTAX, 31, "\"ROLLBAK\""},
    {"SELECT 'unterminated", SQLINFO_ERR_SYNTAX, 8, "unterminated quoted string"},
    {"SELECT $$ unterminated", SQLINFO_ERR_SYNTAX, 8, "unterminated dollar-quoted string"},
    {"/* unterminated comment SELECT 1", SQLINFO_ERR_SYNTAX, 1, "unterminated /* comment"},
    {"/* nested /* only */ one closed */ */ SELECT 1", SQLINFO_ERR_SYNTAX, -1, "syntax error"},
    {"CREATE TABLE (", SQLINFO_ERR_SYNTAX, 14, "syntax error at or near \"(\""},
    {"SELECT * FROM t WHERE", SQLINFO_ERR_SYNTAX, 22, "syntax error at end of input"},
    {"UPDATE t SET", SQLINFO_ERR_SYNTAX, 13, "syntax error at end of input"},
    {"SELECT 1 2", SQLINFO_ERR_SYNTAX, 10, "syntax error at or near \"2\""},
    {"DROP TABLE", SQLINFO_ERR_SYNTAX, 11, "syntax error at end of input"},
    {"DELETE users", SQLINFO_ERR_SYNTAX, 8, "syntax error at or near \"users\""},
    {"SELECT 1; DROP TABLE users; SELECT (", SQLINFO_ERR_SYNTAX, 37, "syntax error"},
    {"SELECT \"\" FROM t", SQLINFO_ERR_SYNTAX, 8, "zero-length delimited identifier"},
};

static void check_error(const struct ecase *e)
{
	struct sqlinfo *info = sqlinfo_analyse(e->sql, strlen(e->sql));
	CHECK(info->error == e->error);
	CHECK(info->n_stmts == 0 && info->stmts == NULL);
	CHECK(info->error_message && strstr(info->error_message, e->message_part));
	CHECK_STR(info->error_sqlstate, "42601");
	if (e->position >= 0 && info->error_position != e->position) {
		fprintf(stderr, "%s: position %d, expected %d\n", e->sql, info->error_position,
		        e->position);
		unit_failed++;
	}
	if (info->error != e->error || !info->error_message ||
	    !strstr(info->error_message, e->message_part))
		fprintf(stderr, "  ^ in error case: %s (got \"%s\")\n", e->sql,
		        info->error_message ? info->error_message : "");
	sqlinfo_free(info);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * times + tl + 1);
	char *p = s;
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < times; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

static void test_limits(void)
{
	/* A NUL byte inside the text is refused, not cut short. */
	static const char nul[] = "SELECT 1\0; DROP TABLE t";
	struct sqlinfo *info = sqlinfo_analyse(nul, sizeof(nul) - 1);
	CHECK(info->error == SQLINFO_ERR_INVALID);
	CHECK(info->error_position == 9);
	CHECK_STR(info->error_sqlstate, "22021");
	CHECK(info->n_stmts == 0);
	sqlinfo_free(info);

	/* The text need not be NUL-terminated. */
	info = sqlinfo_analyse("SELECT * FROM t; garbage", 15);
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
	CHECK(info->n_stmts == 1 && strcmp(info->stmts[0].sql, "SELECT * FROM t") == 0);
	sqlinfo_free(info);

	/* Longest accepted, and one byte more. */
	char *big = repeat("SELECT 1 ", " ", SQLINFO_MAX_SQL - 9, "");
	info = sqlinfo_analyse(big, SQLINFO_MAX_SQL);
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
	sqlinfo_free(info);
	free(big);
	big = repeat("SELECT 1 ", " ", SQLINFO_MAX_SQL - 8, "");
	info = sqlinfo_analyse(big, SQLINFO_MAX_SQL + 1);
	CHECK(info->error == SQLINFO_ERR_TOO_LONG);
	CHECK_STR(info->error_sqlstate, "54000");
	CHECK(info->n_stmts == 0);
	sqlinfo_free(info);
	free(big);

	/* 100000 chained additions: libpg_query alone would overflow an 8 MB
	 * stack writing this tree; here it is refused as too complex. */
	big = repeat("SELECT 1", "+1", 100000, " FROM t");
	info = sqlinfo_analyse(big, strlen(big));
	CHECK(info->error == SQLINFO_ERR_COMPLEX);
	CHECK_STR(info->error_sqlstate, "54001");
	CHECK(info->n_stmts == 0);
	sqlinfo_free(info);
	free(big);

	/* 1500 terms (3 KB, parsed inline) and 4000 (8 KB, on the thread)
	 * are within the depth limit. */
	size_t terms[] = {1500, 4000};
	for (size_t i = 0; i < ARRAY_SIZE(terms); i++) {
		big = repeat("SELECT 1", "+x", terms[i], " FROM t");
		info = sqlinfo_analyse(big, strlen(big));
		CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
		if (info->n_stmts == 1) {
			CHECK(info->stmts[0].n_tables == 1);
			CHECK(info->stmts[0].n_columns == 1);
			CHECK(info->stmts[0].columns[0].table_index == 0);
		}
		sqlinfo_free(info);
		free(big);
	}

	/* Deep parentheses: the parser's own stack limit answers. */
	char *open = repeat("SELECT ", "(", 20000, "1");
	big = repeat(open, ")", 20000, "");
	info = sqlinfo_analyse(big, strlen(big));
	CHECK(info->error == SQLINFO_ERR_SYNTAX && info->n_stmts == 0);
	sqlinfo_free(info);
	free(big);
	free(open);

	/* Wide but flat: a long IN list and many tables, merged when repeated. */
	big = repeat("SELECT * FROM t WHERE a IN (0", ",1", 50000, ")");
	info = sqlinfo_analyse(big, strlen(big));
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
	sqlinfo_free(info);
	free(big);
	big = repeat("SELECT * FROM t", ", t", 3000, "");
	info = sqlinfo_analyse(big, strlen(big));
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 1 && info->stmts[0].n_tables == 1);
	sqlinfo_free(info);
	free(big);

	/* Many statements in one string. */
	big = repeat("", "SELECT 1 FROM t;", 2000, "DELETE FROM t");
	info = sqlinfo_analyse(big, strlen(big));
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 2001);
	if (info->n_stmts == 2001) {
		CHECK_STR(info->stmts[1999].sql, "SELECT 1 FROM t");
		CHECK_STR(info->stmts[2000].command, "DELETE");
		CHECK(info->stmts[2000].unfiltered_write);
	}
	sqlinfo_free(info);
	/* ... and one bad statement at the very end flags them all */
	char *bad = repeat(big, "", 0, "; SELEC");
	info = sqlinfo_analyse(bad, strlen(bad));
	CHECK(info->error == SQLINFO_ERR_SYNTAX && info->n_stmts == 0);
	sqlinfo_free(info);
	free(bad);
	free(big);
}

static void test_empty(void)
{
	const char *texts[] = {"", "   ", ";", ";;;", "-- only a comment\n", "/* c */"};
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct sqlinfo *info = sqlinfo_analyse(texts[i], strlen(texts[i]));
		CHECK(info->error == SQLINFO_OK);
		CHECK(info->n_stmts == 0 && !info->multi);
		sqlinfo_free(info);
	}
	struct sqlinfo *info = sqlinfo_analyse(NULL, 0);
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 0);
	sqlinfo_free(info);
	info = sqlinfo_analyse(NULL, 5);
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 0 && info->len == 0);
	sqlinfo_free(info);
}

static const char *fingerprint_of(const char *sql, size_t stmt, char *out)
{
	struct sqlinfo *info = sqlinfo_analyse(sql, strlen(sql));
	out[0] = '\0';
	if (info->n_stmts > stmt)
		snprintf(out, 17, "%s", info->stmts[stmt].fingerprint);
	sqlinfo_free(info);
	return out;
}

static void test_fingerprints(void)
{
	char a[17], b[17];
	/* constants do not change it, structure does */
	CHECK_STR(fingerprint_of("SELECT * FROM t WHERE id = 1", 0, a),
	          fingerprint_of("SELECT * FROM t WHERE id = 2", 0, b));
	CHECK(strcmp(fingerprint_of("SELECT * FROM t WHERE id = 1", 0, a),
	             fingerprint_of("SELECT * FROM u WHERE id = 1", 0, b)) != 0);
	CHECK(strcmp(fingerprint_of("DELETE FROM t WHERE id = 1", 0, a),
	             fingerprint_of("DELETE FROM t", 0, b)) != 0);
	/* each statement of a string has its own */
	CHECK_STR(fingerprint_of("SELECT 1; SELECT * FROM t WHERE a = 5", 1, a),
	          fingerprint_of("SELECT * FROM t WHERE a = 7", 0, b));
	CHECK(strcmp(fingerprint_of("SELECT 1; SELECT * FROM t", 0, a),
	             fingerprint_of("SELECT 1; SELECT * FROM t", 1, b)) != 0);
}

static void test_references(void)
{
	struct sqlinfo *info = sqlinfo_analyse("SELECT 1", 8);
	CHECK(sqlinfo_ref(info) == info);
	sqlinfo_free(info);
	CHECK(info->n_stmts == 1 && strcmp(info->stmts[0].command, "SELECT") == 0);
	sqlinfo_free(info);
	sqlinfo_free(NULL);
	CHECK_STR(sqlinfo_access_name(SQLINFO_READ), "read");
	CHECK_STR(sqlinfo_access_name(SQLINFO_WRITE), "write");
	CHECK_STR(sqlinfo_kind_name(SQLINFO_TRANSACTION), "transaction");
	CHECK_STR(sqlinfo_kind_name(SQLINFO_DO), "do");
}

static void test_cache(void)
{
	struct sqlinfo_cache *cache = sqlinfo_cache_new(2);
	struct sqlinfo_cache_stats s;
	const char *a = "SELECT * FROM a", *b = "SELECT * FROM b", *c = "SELECT * FROM c";

	struct sqlinfo *a1 = sqlinfo_cache_analyse(cache, a, strlen(a));
	struct sqlinfo *a2 = sqlinfo_cache_analyse(cache, a, strlen(a));
	CHECK(a1 == a2); /* a hit is the same analysis */
	struct sqlinfo *b1 = sqlinfo_cache_analyse(cache, b, strlen(b));
	/* a was used after b was added? no: a is older, but touch it */
	struct sqlinfo *a3 = sqlinfo_cache_analyse(cache, a, strlen(a));
	CHECK(a3 == a1);
	/* c evicts the least recently used: b, not a */
	struct sqlinfo *c1 = sqlinfo_cache_analyse(cache, c, strlen(c));
	struct sqlinfo *a4 = sqlinfo_cache_analyse(cache, a, strlen(a));
	CHECK(a4 == a1);
	struct sqlinfo *b2 = sqlinfo_cache_analyse(cache, b, strlen(b));
	CHECK(b2 != b1); /* analysed again */
	/* an evicted analysis still held by its caller stays valid */
	CHECK(b1->n_stmts == 1 && strcmp(b1->stmts[0].tables[0].name, "b") == 0);
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.hits == 3);
	CHECK(s.misses == 4);
	CHECK(s.evictions == 2);
	CHECK(s.entries == 2);
	CHECK(s.capacity == 2);

	/* same bytes, different length: a different key */
	struct sqlinfo *ab = sqlinfo_cache_analyse(cache, "SELECT * FROM abc", 15);
	CHECK(ab == a1);
	struct sqlinfo *abc = sqlinfo_cache_analyse(cache, "SELECT * FROM abc", 17);
	CHECK(abc != a1 && abc->n_stmts == 1 && strcmp(abc->stmts[0].tables[0].name, "abc") == 0);

	/* errors are cached too */
	struct sqlinfo *e1 = sqlinfo_cache_analyse(cache, "SELEC", 5);
	struct sqlinfo *e2 = sqlinfo_cache_analyse(cache, "SELEC", 5);
	CHECK(e1 == e2 && e1->error == SQLINFO_ERR_SYNTAX);

	/* long texts are analysed but not kept */
	char *big = repeat("SELECT 1", " ", SQLINFO_CACHE_MAX_SQL, "");
	struct sqlinfo *l1 = sqlinfo_cache_analyse(cache, big, strlen(big));
	struct sqlinfo *l2 = sqlinfo_cache_analyse(cache, big, strlen(big));
	CHECK(l1 != l2 && l1->n_stmts == 1);
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.uncached == 2);
	free(big);

	struct sqlinfo *all[] = {a1, a2, b1, a3, c1, a4, b2, ab, abc, e1, e2, l1, l2};
	sqlinfo_cache_free(cache);
	/* the cache is gone; the callers' references are not */
	CHECK(c1->n_stmts == 1 && strcmp(c1->stmts[0].tables[0].name, "c") == 0);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		sqlinfo_free(all[i]);

	/* capacity 0 keeps nothing */
	cache = sqlinfo_cache_new(0);
	a1 = sqlinfo_cache_analyse(cache, a, strlen(a));
	a2 = sqlinfo_cache_analyse(cache, a, strlen(a));
	CHECK(a1 != a2);
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.entries == 0 && s.uncached == 2 && s.hits == 0);
	sqlinfo_free(a1);
	sqlinfo_free(a2);
	sqlinfo_cache_free(cache);

	/* many distinct texts through a small cache */
	cache = sqlinfo_cache_new(8);
	for (int i = 0; i < 100; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT * FROM t%d", i % 20);
		struct sqlinfo *x = sqlinfo_cache_analyse(cache, sql, strlen(sql));
		char want[16];
		snprintf(want, sizeof(want), "t%d", i % 20);
		CHECK(x->n_stmts == 1 && strcmp(x->stmts[0].tables[0].name, want) == 0);
		sqlinfo_free(x);
	}
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.entries == 8 && s.misses == 100 && s.evictions == 92);
	sqlinfo_cache_free(cache);
}

/* ------------------------------------------------------------------ */
/* The cache's normalized level: a text that differs from an analysed one
 * only in its literals is answered from that analysis. Each answer is
 * compared with a fresh analysis of the same text, field by field. */

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether got says all that want says; if not, what differs, in why. */
static bool same_analysis(const struct sqlinfo *got, const struct sqlinfo *want, char *why,
                          size_t size)
{
#define DIFF(cond, ...)                                                                            \
	do {                                                                                       \
		if (cond) {                                                                        \
			snprintf(why, size, __VA_ARGS__);                                          \
			return false;                                                              \
		}                                                                                  \
	} while (0)
	DIFF(got->len != want->len || memcmp(got->text, want->text, got->len) != 0 ||
	         got->text[got->len] != '\0',
	     "text");
	DIFF(got->error != want->error, "error %d, want %d", got->error, want->error);
	DIFF(!same_str(got->error_message, want->error_message), "error message");
	DIFF(got->error_position != want->error_position, "error position");
	DIFF(!same_str(got->error_sqlstate, want->error_sqlstate), "sqlstate");
	DIFF(got->multi != want->multi, "multi");
	DIFF(got->n_stmts != want->n_stmts, "%zu statements, want %zu", got->n_stmts,
	     want->n_stmts);
	for (size_t i = 0; i < got->n_stmts; i++) {
		const struct sqlinfo_stmt *g = &got->stmts[i], *w = &want->stmts[i];
		DIFF(g->sql_len != w->sql_len || strlen(g->sql) != g->sql_len ||
		         strcmp(g->sql, w->sql) != 0,
		     "statement %zu: sql \"%s\", want \"%s\"", i, g->sql, w->sql);
		DIFF(g->offset != w->offset, "statement %zu: offset %zu, want %zu", i, g->offset,
		     w->offset);
		DIFF(g->kind != w->kind, "statement %zu: kind", i);
		DIFF(!same_str(g->command, w->command), "statement %zu: command", i);
		DIFF(!same_str(g->setting, w->setting), "statement %zu: setting", i);
		DIFF(!same_str(g->fingerprint, w->fingerprint),
		     "statement %zu: fingerprint %s, want %s", i,
		     g->fingerprint ? g->fingerprint : "NULL",
		     w->fingerprint ? w->fingerprint : "NULL");
		DIFF(g->n_tables != w->n_tables, "statement %zu: tables", i);
		for (size_t k = 0; k < g->n_tables; k++)
			DIFF(!same_str(g->tables[k].schema, w->tables[k].schema) ||
			         !same_str(g->tables[k].name, w->tables[k].name) ||
			         g->tables[k].access != w->tables[k].access,
			     "statement %zu: table %zu", i, k);
		DIFF(g->n_columns != w->n_columns, "statement %zu: columns", i);
		for (size_t k = 0; k < g->n_columns; k++)
			DIFF(!same_str(g->columns[k].schema, w->columns[k].schema) ||
			         !same_str(g->columns[k].table, w->columns[k].table) ||
			         !same_str(g->columns[k].name, w->columns[k].name) ||
			         g->columns[k].table_index != w->columns[k].table_index ||
			         g->columns[k].access != w->columns[k].access,
			     "statement %zu: column %zu", i, k);
		DIFF(g->n_functions != w->n_functions, "statement %zu: functions", i);
		for (size_t k = 0; k < g->n_functions; k++)
			DIFF(!same_str(g->functions[k].schema, w->functions[k].schema) ||
			         !same_str(g->functions[k].name, w->functions[k].name) ||
			         !same_str(g->functions[k].qualified, w->functions[k].qualified),
			     "statement %zu: function %zu", i, k);
		char gf[16], wf[16];
		fmt_flags(g, gf);
		fmt_flags(w, wf);
		DIFF(strcmp(gf, wf) != 0 || g->multi != w->multi || g->writes != w->writes,
		     "statement %zu: flags %s, want %s", i, gf, wf);
	}
	return true;
#undef DIFF
}

/* Analyses sql (len bytes) through the cache and checks the answer against a
 * fresh analysis. Returns whether it was a normalized hit. */
static bool check_cached(struct sqlinfo_cache *cache, const char *sql, size_t len,
                         const char *primed)
{
	struct sqlinfo_cache_stats before, after;
	sqlinfo_cache_get_stats(cache, &before);
	struct sqlinfo *got = sqlinfo_cache_analyse(cache, sql, len);
	sqlinfo_cache_get_stats(cache, &after);
	struct sqlinfo *want = sqlinfo_analyse(sql, len);
	char why[512];
	bool same = same_analysis(got, want, why, sizeof(why));
	CHECK(same);
	if (!same)
		fprintf(stderr, "  ^ %s\n    after: %s\n    text:  %.*s\n", why, primed, (int)len,
		        sql);
	sqlinfo_free(got);
	sqlinfo_free(want);
	return after.normalized_hits > before.normalized_hits;
}

/*
 * Rewrites the literals of sql as a client inlining other values would,
 * into out: written apart from sqlinfo.c's lexer, so that the two do not
 * share a mistake. Numbers and standard strings change; what is inside
 * comments, quoted identifiers, dollar quotes and prefixed strings (E'',
 * B'', X'', N'', U&'') does not. variant 1 and 2 keep each literal's token
 * type (an int stays an int), 3 changes that of integers.
 * Returns how many literals it changed.
 */
static size_t rewrite_literals(const char *sql, int variant, char *out, size_t size)
{
	size_t n = 0, o = 0, len = strlen(sql), i = 0;
#define PUTS(s, l)                                                                                 \
	do {                                                                                       \
		size_t l_ = (l);                                                                   \
		if (o + l_ < size) {                                                               \
			memcpy(out + o, (s), l_);                                                  \
			o += l_;                                                                   \
		}                                                                                  \
	} while (0)
#define IDENT(ch)                                                                                  \
	(isalnum((unsigned char)(ch)) || (ch) == '_' || (ch) == '$' || (unsigned char)(ch) >= 0x80)
	while (i < len) {
		size_t from = i;
		char c = sql[i];
		if (c == '-' && sql[i + 1] == '-') {
			while (i < len && sql[i] != '\n' && sql[i] != '\r')
				i++;
		} else if (c == '/' && sql[i + 1] == '*') {
			int depth = 0;
			do {
				if (sql[i] == '/' && sql[i + 1] == '*')
					depth++, i += 2;
				else if (sql[i] == '*' && sql[i + 1] == '/')
					depth--, i += 2;
				else
					i++;
			} while (depth > 0 && i < len);
		} else if (c == '"') {
			for (i++; i < len; i++)
				if (sql[i] == '"' && sql[++i] != '"')
					break;
		} else if (c == '$' && !isdigit((unsigned char)sql[i + 1])) {
			/* $tag$ ... $tag$, kept */
			size_t t = i + 1;
			while (t < len && sql[t] != '$' && IDENT(sql[t]))
				t++;
			if (t < len && sql[t] == '$') {
				size_t tl = t + 1 - i;
				const char *end = memmem(sql + t + 1, len - t - 1, sql + i, tl);
				i = end ? (size_t)(end - sql) + tl : len;
			} else {
				i++;
			}
		} else if (IDENT(c) && !isdigit((unsigned char)c)) {
			while (i < len && IDENT(sql[i]))
				i++;
			bool e = i - from == 1 && (c == 'e' || c == 'E');
			if ((c == 'u' || c == 'U') && i - from == 1 && sql[i] == '&')
				i++;
			if (sql[i] == '\'') /* a prefixed string, kept */
				for (i++; i < len; i++) {
					if (e && sql[i] == '\\')
						i++;
					else if (sql[i] == '\'' && sql[++i] != '\'')
						break;
				}
		} else if (c == '\'') {
			for (i++; i < len; i++)
				if (sql[i] == '\'' && sql[++i] != '\'')
					break;
			static const char *const strings[] = {
			    "", "it''s; DROP TABLE t; -- /* \\ */ $$ \"q\" ",
			    "M\xc3\xbcller\t\x01\x7f 12 ''x'' "};
			const char *s = strings[variant - 1];
			if (variant == 1 && i - from == 2)
				s = "x";
			PUTS("'", 1);
			PUTS(s, strlen(s));
			PUTS("'", 1);
			n++;
			continue;
		} else if (isdigit((unsigned char)c) ||
		           (c == '.' && isdigit((unsigned char)sql[i + 1]))) {
			bool decimal = false;
			while (isdigit((unsigned char)sql[i]) || sql[i] == '.') {
				decimal |= sql[i] == '.';
				i++;
			}
			if (IDENT(sql[i])) { /* 1e5, 1ea: left as they are */
				while (IDENT(sql[i]))
					i++;
			} else {
				static const char *const ints[] = {"7", "2147483647", "2147483648"};
				static const char *const big[] = {"9999999999", "123456789012345",
				                                  "7"};
				static const char *const decimals[] = {"0.5", "123456.789", "1.0"};
				const char *s = decimal ? decimals[variant - 1] : ints[variant - 1];
				if (!decimal && strtoll(sql + from, NULL, 10) > INT_MAX)
					s = big[variant - 1];
				if (strlen(s) == i - from && strncmp(s, sql + from, i - from) == 0)
					s = decimal ? "12.25" : "1234567";
				PUTS(s, strlen(s));
				n++;
				continue;
			}
		} else {
			i++;
		}
		PUTS(sql + from, i - from);
	}
	out[o] = '\0';
	return n;
#undef PUTS
#undef IDENT
}

/* Texts with literals whose variants must be normalized hits (hit), and
 * some that must not (the lexer refuses them, or their analysis may depend
 * on a literal's value). The whole corpus above goes through the same
 * comparison, without expectations about hits. */
static const struct {
	const char *sql;
	bool hit;
} norm_cases[] = {
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", true},
    {"SELECT id, email FROM public.users WHERE id = 42", true},
    {"VALUES (1, 'a'), (2, 'b')", true},
    {"SELECT * FROM (VALUES (1), (2)) AS v(x)", true},
    {"SELECT 1 FROM t1 UNION SELECT 2 FROM t2 EXCEPT SELECT 3 FROM t3", true},
    {"SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END, b::text FROM t", true},
    {"SELECT lower(u.email) FROM users u WHERE lower(u.email) LIKE '%x'", true},
    {"SELECT * FROM generate_series(1, 10) g", true},
    {"SELECT * FROM pg_read_file('/etc/passwd')", true},
    {"SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", true},
    {"SELECT lo_export(12345, '/tmp/x')", true},
    {"SELECT pg_catalog.pg_read_file('x', 0, 100)", true},
    {"SELECT upper(dblink_exec('c', 'DROP TABLE t'))", true},
    {"SELECT set_config('search_path', 'evil', false)", true},
    {"SELECT * FROM t WHERE id = ANY(ARRAY[1, 2])", true},
    {"SELECT * FROM big TABLESAMPLE BERNOULLI (1) REPEATABLE (42)", true},
    {"WITH recent AS (SELECT * FROM orders WHERE ts > now() - interval '1 day') SELECT * FROM "
     "recent",
     true},
    {"WITH i AS (INSERT INTO log (msg) VALUES ('x') RETURNING id) SELECT id FROM i", true},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100) SELECT * "
     "FROM r",
     true},
    {"INSERT INTO users (email, name) VALUES ('a@b', 'A')", true},
    {"INSERT INTO public.users VALUES (1)", true},
    {"INSERT INTO t AS x (id, v) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET v = excluded.v + "
     "x.v RETURNING x.id",
     true},
    {"INSERT INTO t (a) VALUES (nextval('seq'))", true},
    {"INSERT INTO t (a, b) SELECT 1, 'x' WHERE NOT EXISTS (SELECT 1 FROM t WHERE a = 1)", true},
    {"UPDATE users SET email = 'x' WHERE id = 1", true},
    {"UPDATE t SET (a, b) = (SELECT x, y FROM src WHERE src.id = t.id) WHERE t.k = 1", true},
    {"UPDATE ONLY t AS x SET v = v + 1 WHERE x.id = 3 RETURNING x.v", true},
    {"UPDATE s.accounts SET balance = balance - 100 WHERE id = 7 RETURNING balance", true},
    {"DELETE FROM t WHERE id = 1", true},
    {"DELETE FROM log WHERE ts < now() - interval '30 days'", true},
    {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.v > 10 THEN UPDATE SET v = 0 WHEN "
     "NOT MATCHED THEN INSERT VALUES (s.id, 'new')",
     true},
    {"SET LOCAL statement_timeout = '5s'", true},
    {"SET TIME ZONE 'UTC'", true},
    {"EXECUTE q (1)", true},
    {"CALL process_queue(10)", true},
    {"EXPLAIN ANALYZE DELETE FROM users WHERE id = 1", true},
    {"SELECT 'a;b', \"semi;colon\" FROM t", true},
    {"SELECT 'it''s; DROP TABLE t' FROM u", true},
    {"SELECT 1 -- ; DROP TABLE users", true},
    {"-- leading comment\nSELECT 1", true},
    {"/* block */ SELECT /* inner */ * FROM t /* trailing */ WHERE a = 'x'", true},
    {"/* outer /* nested; 'x' */ still comment; */ SELECT 1 FROM t", true},
    {"SELECT 1;", true},
    {";; SELECT 1 ;;", true},
    {"SELECT * FROM \"a\"\"b\" WHERE c = 5", true},
    {"SELECT \"My Table\".\"Col\" FROM \"Sch\".\"My Table\" WHERE \"Col\" > 2.5", true},
    {"SELECT * FROM \"it's\" WHERE \"x\"\"'\" = 'y'", true},
    {"SELECT * FROM orders WHERE user_id = $1 AND status = 'open' LIMIT 20", true},
    {"PREPARE q (int) AS SELECT * FROM users WHERE id = $1 AND kind = 'a'", true},
    {"SELECT x FROM t WHERE a < -1 AND b <- 2 AND c = - /* c */ 3", true},
    {"SELECT -'1', - 2.5 FROM t", true},
    {"SELECT 'a'\n'b' FROM t", true},
    {"SELECT 'a' \n\t 'b'\r'c' FROM t WHERE d = 'e'", true},
    {"SELECT 2147483648, 1.5 FROM t", true},
    {"SELECT x::varchar(10), y::numeric(10, 2), z::timestamp(3) FROM t", true},
    {"SELECT DATE '2020-01-01', interval '1' day FROM t", true},
    {"SELECT * FROM t ORDER BY 1 LIMIT 10 OFFSET 20", true},
    {"SELECT * FROM t FETCH FIRST 5 ROWS ONLY", true},
    {"SELECT a FROM t GROUP BY 1 HAVING count(*) > 3", true},
    {"SELECT * FROM t WHERE a BETWEEN 1 AND 10 AND b IN ('x', 'y') AND c IS NOT NULL", true},
    {"SELECT t1.c2 FROM t1 JOIN t2 ON t1.id = t2.id AND t2.k = 7", true},
    {"SELECT * FROM t WHERE a = 1 FOR UPDATE", true},
    {"SELECT ARRAY[1, 2, 3], ROW(1, 'a')", true},
    {"SELECT * FROM t WHERE a ~ '^x' AND b LIKE 'y%' ESCAPE '!'", true},
    {"SELECT a$1, t2.c3 FROM t2 WHERE b = 'x'", true},
    {"COPY (SELECT * FROM t WHERE a = 5) TO STDOUT", true},
    {"ALTER TABLE t ADD COLUMN c int DEFAULT 5", true},
    {"CREATE TABLE t (id int, name varchar(20) DEFAULT 'x' CHECK (id > 0))", true},
    {"CREATE INDEX ON t (a) WHERE b = 'x'", true},
    /* several statements */
    {"SELECT 1; SELECT 2", true},
    {"BEGIN; UPDATE t SET a = 1 WHERE id = 2; COMMIT;", true},
    {"SELECT 'a;b'; SELECT 'x'", true},
    {"/* c; */ SELECT 1; -- x;\nDELETE FROM t WHERE id = 10", true},
    {"INSERT INTO a VALUES (1);DELETE FROM b WHERE c = 'zz'", true},
    {"SELECT 1;;\n\n  SELECT * FROM \"x;y\" WHERE z = 'q' ; ", true},
    {"SET search_path = x; SELECT * FROM t WHERE a = 'b' /* 'c' */; SELECT 3 -- 'd'\n", true},
    /* the lexer refuses */
    {"SELECT E'x' FROM t WHERE a = 1", false},
    {"SELECT $$x$$, 1", false},
    {"SELECT 1e5, 2", false},
    {"SELECT .5 FROM t WHERE a = 1", false},
    {"SELECT * FROM U&\"d\\0061t\\+000061\" WHERE a = 1", false},
    {"SELECT 'a' FROM t WHERE b = N'x'", false},
    {"SELECT 1 /* unterminated", false},
    /* the analysis might depend on a value */
    {"EXPLAIN (ANALYZE 0) DELETE FROM t", false},
    {"EXPLAIN (ANALYZE 'off') DELETE FROM t WHERE a = 1", false},
    {"FETCH 10 FROM c", false},
    {"SELECT 1::float(10)", false},
    {"SELECT 1::int[5]", false},
    {"COPY t TO '/tmp/t.csv'", false},
    {"CREATE FUNCTION add(a int, b int) RETURNS int AS 'SELECT a + b' LANGUAGE sql", false},
    {"DO 'BEGIN NULL; END'", false},
    {"NOTIFY jobs, 'payload'", false},
    {"COMMENT ON TABLE s.t IS 'x'", false},
    {"CREATE ROLE analyst LOGIN PASSWORD 'x'", false},
    {"ALTER SEQUENCE seq RESTART WITH 1", false},
    {"PREPARE TRANSACTION 'tx1'", false},
    {"CREATE TYPE mood AS ENUM ('sad', 'ok')", false},
    /* errors are not kept under a normalized key */
    {"SELECT 1 FROM WHERE a = 'x'", false},
};

/* Primes a cache with sql, then analyses each variant of it through the
 * cache; returns how many variants were normalized hits (of 2 that keep
 * the token types, the third is not counted). */
static int check_variants(const char *sql)
{
	int hits = 0;
	for (int v = 1; v <= 3; v++) {
		char variant[2048];
		if (rewrite_literals(sql, v, variant, sizeof(variant)) == 0)
			continue;
		struct sqlinfo_cache *cache = sqlinfo_cache_new(16);
		sqlinfo_free(sqlinfo_cache_analyse(cache, sql, strlen(sql)));
		if (check_cached(cache, variant, strlen(variant), sql) && v < 3)
			hits++;
		/* and back: the original from the variant's entry, if any */
		check_cached(cache, sql, strlen(sql), variant);
		sqlinfo_cache_free(cache);
	}
	return hits;
}

static void test_normalized_property(void)
{
	for (int fp = 1; fp >= 0; fp--) {
		sqlinfo_set_fingerprints(fp);
		for (size_t i = 0; i < ARRAY_SIZE(norm_cases); i++) {
			int hits = check_variants(norm_cases[i].sql);
			CHECK(hits == (norm_cases[i].hit ? 2 : 0));
			if (hits != (norm_cases[i].hit ? 2 : 0))
				fprintf(stderr, "  ^ %d normalized hits for %s\n", hits,
				        norm_cases[i].sql);
		}
		for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
			check_variants(cases[i].sql);
		for (size_t i = 0; i < ARRAY_SIZE(multi_cases); i++)
			check_variants(multi_cases[i].sql);
	}
	sqlinfo_set_fingerprints(true);
}

/*
 * Pairs whose texts look alike once literals are taken out, to a lexer
 * less careful than the cache's, but whose statements differ: the second
 * must never be answered from the first's entry, nor the first from the
 * second's. Several would hide a DROP TABLE from a policy.
 */
static const struct {
	const char *a, *b;
	size_t b_len; /* 0: strlen */
} bypass_pairs[] = {
    {"SELECT 1ea", "SELECT 1e5"},
    {"SELECT 'a'\n'b'", "SELECT 'a' 'b'"},
    {"SELECT 'a' -- c\n'b' FROM t", "SELECT 'a'\n'b' FROM t"},
    /* E'': a backslash escapes the quote */
    {"SELECT E'a\\'; DROP TABLE t; -- '", "SELECT E'a\\\\'; DROP TABLE t; -- '"},
    {"SELECT E'\\'', 1 FROM t", "SELECT E'\\', 1 FROM t'"},
    /* standard strings: it does not */
    {"SELECT 'nothing'", "SELECT 'a\\' , (SELECT 1 FROM secret) --'"},
    {"SELECT 'x''; DROP TABLE t; --' FROM u", "SELECT 'x'; DROP TABLE t; --' FROM u"},
    {"SELECT 1 FROM t WHERE a = 'x''y'", "SELECT 1 FROM t WHERE a = 'x' 'y'"},
    /* quotes inside dollar quotes, comments and identifiers */
    {"SELECT $$ ' $$ AS x -- '", "SELECT $$ ' $$; DROP TABLE t; -- '"},
    {"SELECT $a$x$a$ FROM t", "SELECT $a$y$a$ FROM t"},
    {"SELECT 1 -- it'x'", "SELECT 1 -- it's\n; DROP TABLE t; -- '"},
    {"SELECT 1 /* nested /* */ 'x' */", "SELECT 1 /* nested /* */ '*/; DROP TABLE t; /*' */"},
    {"SELECT \"it's\" FROM t -- '", "SELECT \"it'\"; DROP TABLE t; --'"},
    {"SELECT \"a\"\"b\" FROM t WHERE c = 'x'", "SELECT \"a\" \"b\" FROM t WHERE c = 'x'"},
    /* Unicode escapes: the UESCAPE string changes the name */
    {"SELECT * FROM U&\"x!0061\" UESCAPE '!'", "SELECT * FROM U&\"x!0061\" UESCAPE '#'"},
    {"SELECT U&'d' || 'x' FROM t", "SELECT U&'d' || 'y' FROM t"},
    {"SELECT B'101' FROM t", "SELECT B'111' FROM t"},
    {"SELECT X'1F', N'x' FROM t", "SELECT X'FF', N'y' FROM t"},
    /* values the analysis or the grammar reads */
    {"EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t"},
    {"EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t"},
    {"FETCH 10 FROM c", "FETCH 20 FROM c"},
    {"SELECT 1::float(10)", "SELECT 1::float(60)"},
    {"SELECT 1::int[5]", "SELECT 1::int[6]"},
    {"COPY t FROM 'a'", "COPY t FROM 'b'"},
    {"DO 'BEGIN NULL; END'", "DO 'BEGIN DROP TABLE t; END'"},
    {"PREPARE TRANSACTION 'a'", "PREPARE TRANSACTION 'b'"},
    /* signs, classes and digits that are not literals */
    {"SELECT 5 -1", "SELECT 5 1"},
    {"SELECT 1-1 FROM t", "SELECT 1 -1 FROM t"},
    {"SELECT * FROM t LIMIT 2147483647", "SELECT * FROM t LIMIT 2147483648"},
    {"SELECT 1.5 FROM t", "SELECT 15 FROM t"},
    {"SELECT .5 FROM t", "SELECT .7 FROM t"},
    {"SELECT 1.5 FROM t", "SELECT 1.5.5 FROM t"},
    {"SELECT 0x1F", "SELECT 0x2F"},
    {"SELECT $1::int FROM t", "SELECT $2::int FROM t"},
    {"SELECT a FROM t1 WHERE x = 1", "SELECT a FROM t2 WHERE x = 2"},
    {"SELECT a$1 FROM t WHERE x = 1", "SELECT a$2 FROM t WHERE x = 2"},
    /* bytes that could pass for the key's marks */
    {"SELECT 1, 2", "SELECT 1, \x01"},
    {"SELECT 'a', 'b'", "SELECT 'a', \x03"},
    {"SELECT 1, \"a\"", "SELECT 1, \"\x01\""},
    {"SELECT 'a'", "SELECT 'a\0b'", 11},
    {"SELECT 1 /* x", "SELECT 2 /* x"},
};

static void test_normalized_bypass(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bypass_pairs); i++) {
		const char *text[2] = {bypass_pairs[i].a, bypass_pairs[i].b};
		size_t len[2] = {strlen(text[0]),
		                 bypass_pairs[i].b_len ? bypass_pairs[i].b_len : strlen(text[1])};
		for (int first = 0; first < 2; first++) {
			struct sqlinfo_cache *cache = sqlinfo_cache_new(16);
			check_cached(cache, text[first], len[first], "(nothing)");
			bool hit = check_cached(cache, text[!first], len[!first], text[first]);
			CHECK(!hit);
			if (hit)
				fprintf(stderr, "  ^ normalized hit for %s after %s\n",
				        text[!first], text[first]);
			sqlinfo_cache_free(cache);
		}
	}
}

static void test_normalized_cache(void)
{
	struct sqlinfo_cache *cache = sqlinfo_cache_new(4);
	struct sqlinfo_cache_stats s;
	const char *a = "SELECT abalance FROM pgbench_accounts WHERE aid = 1; SELECT 'x' FROM t";
	const char *b = "SELECT abalance FROM pgbench_accounts WHERE aid = 123456; SELECT 'a much "
	                "longer text' FROM t";
	struct sqlinfo *base = sqlinfo_cache_analyse(cache, a, strlen(a));
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.misses == 1 && s.entries == 2); /* the text and its key */
	struct sqlinfo *view = sqlinfo_cache_analyse(cache, b, strlen(b));
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(view != base);
	CHECK(s.normalized_hits == 1 && s.hits == 0 && s.misses == 1);
	CHECK(s.entries == 2); /* a normalized hit does not add its text */
	/* the view is the same statement with its own texts */
	CHECK(view->n_stmts == 2 && view->multi && view->len == strlen(b));
	if (view->n_stmts == 2) {
		CHECK_STR(view->stmts[0].sql,
		          "SELECT abalance FROM pgbench_accounts WHERE aid = 123456");
		CHECK(view->stmts[1].offset == 58);
		CHECK_STR(view->stmts[1].sql, "SELECT 'a much longer text' FROM t");
		CHECK(view->stmts[0].tables == base->stmts[0].tables); /* shared */
	}
	/* the base's exact entry serves the base's text */
	struct sqlinfo *again = sqlinfo_cache_analyse(cache, a, strlen(a));
	CHECK(again == base);
	sqlinfo_free(again);

	/* The cache and the caller's reference to the base go: the view keeps
	 * what it points to (valgrind and ASan watch this). */
	sqlinfo_free(base);
	sqlinfo_cache_free(cache);
	if (view->n_stmts == 2) {
		CHECK_STR(view->stmts[0].tables[0].name, "pgbench_accounts");
		CHECK_STR(view->stmts[0].columns[1].name, "aid");
		CHECK_STR(view->stmts[1].command, "SELECT");
		CHECK(view->stmts[1].sql[view->stmts[1].sql_len] == '\0');
	}
	struct sqlinfo *held = sqlinfo_ref(view);
	sqlinfo_free(view);
	CHECK(held->n_stmts == 2 && strcmp(held->text, b) == 0);
	sqlinfo_free(held);

	/* Evicted while a view is held: the same. With capacity 1 the key's
	 * entry pushes out the text's own. */
	cache = sqlinfo_cache_new(1);
	sqlinfo_free(sqlinfo_cache_analyse(cache, a, strlen(a)));
	view = sqlinfo_cache_analyse(cache, b, strlen(b));
	struct sqlinfo *other = sqlinfo_cache_analyse(cache, "SELECT 2 FROM u", 15);
	sqlinfo_cache_get_stats(cache, &s);
	CHECK(s.normalized_hits == 1 && s.entries == 1 && s.evictions == 3);
	CHECK(view->n_stmts == 2 && strcmp(view->stmts[0].tables[0].name, "pgbench_accounts") == 0);
	sqlinfo_free(other);
	sqlinfo_cache_free(cache);
	CHECK(view->n_stmts == 2 && strcmp(view->stmts[1].tables[0].name, "t") == 0);
	sqlinfo_free(view);

	/* a single statement's text is the view's whole text */
	cache = sqlinfo_cache_new(8);
	sqlinfo_free(sqlinfo_cache_analyse(cache, "DELETE FROM t WHERE id = 1", 26));
	view = sqlinfo_cache_analyse(cache, "DELETE FROM t WHERE id = 12", 27);
	CHECK(view->n_stmts == 1 && view->stmts[0].sql == view->text &&
	      view->stmts[0].sql_len == 27 && view->stmts[0].has_where);
	sqlinfo_free(view);
	sqlinfo_cache_free(cache);
}

/* Texts near the limits: many literals in a text analysed on its own
 * thread, and a tree as deep as the analysis takes. */
static void test_normalized_limits(void)
{
	char *a = malloc(16384), *b = malloc(16384);
	a[0] = b[0] = '\0';
	for (int i = 0; i < 300; i++) {
		char s[64];
		snprintf(s, sizeof(s), "INSERT INTO t VALUES (%d, 'v%d');\n", i, i);
		strcat(a, s);
		snprintf(s, sizeof(s), "INSERT INTO t VALUES (%d, '');\n", i * 1000);
		strcat(b, s);
	}
	struct sqlinfo_cache *cache = sqlinfo_cache_new(8);
	sqlinfo_free(sqlinfo_cache_analyse(cache, a, strlen(a)));
	CHECK(strlen(b) > 4096 && check_cached(cache, b, strlen(b), "300 INSERTs"));
	sqlinfo_cache_free(cache);
	free(a);
	free(b);

	/* libpg_query leaves a zero out of the tree: at the depth limit,
	 * ARRAY[...[0]...] passes where ARRAY[...[5]...] is too deep, and the
	 * first must not answer for the second. */
	bool found = false;
	for (int n = 3320; n < 3340 && !found; n++) {
		char *zero = repeat("SELECT ", "ARRAY[", (size_t)n, "0");
		char *text = repeat(zero, "]", (size_t)n, "");
		size_t len = strlen(text);
		struct sqlinfo *z = sqlinfo_analyse(text, len);
		*strchr(text, '0') = '5';
		struct sqlinfo *f = sqlinfo_analyse(text, len);
		if (z->error == SQLINFO_OK && f->error == SQLINFO_ERR_COMPLEX) {
			found = true;
			cache = sqlinfo_cache_new(8);
			*strchr(text, '5') = '0';
			sqlinfo_free(sqlinfo_cache_analyse(cache, text, len));
			*strchr(text, '0') = '5';
			CHECK(!check_cached(cache, text, len, "ARRAY[...[0]...]"));
			sqlinfo_cache_free(cache);
		}
		sqlinfo_free(z);
		sqlinfo_free(f);
		free(text);
		free(zero);
	}
	CHECK(found);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Nanoseconds per sqlinfo_cache_analyse of each of n texts, the best of
 * three rounds. */
static double per_call(struct sqlinfo_cache *cache, char (*texts)[96], int n)
{
	double best = 1e30;
	for (int r = 0; r < 3; r++) {
		double t0 = now_ns();
		for (int i = 0; i < n; i++)
			sqlinfo_free(sqlinfo_cache_analyse(cache, texts[i], strlen(texts[i])));
		double d = (now_ns() - t0) / n;
		if (d < best)
			best = d;
	}
	return best;
}

/* With SQLINFO_BENCH=1, prints to stderr what pgbench -S's statement costs
 * through the cache, fingerprints off as the policy runs it. Asserts
 * nothing. */
static void bench_normalized(void)
{
	const char *env = getenv("SQLINFO_BENCH");
	if (!env || strcmp(env, "1") != 0)
		return;
	enum { N = 4096 };
	char(*same)[96] = malloc(N * sizeof(*same));
	char(*varied)[96] = malloc(N * sizeof(*varied));
	char(*distinct)[96] = malloc(N * sizeof(*distinct));
	for (int i = 0; i < N; i++) {
		int aid = 1 + (i * 7919) % 100000;
		snprintf(same[i], sizeof(same[i]),
		         "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;");
		snprintf(varied[i], sizeof(varied[i]),
		         "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", aid);
		/* a comment makes each a statement of its own */
		snprintf(distinct[i], sizeof(distinct[i]),
		         "/* %d */ SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i, aid);
	}
	sqlinfo_set_fingerprints(false);
	struct sqlinfo_cache *cache = sqlinfo_cache_new(SQLINFO_CACHE_DEFAULT);
	double exact = per_call(cache, same, N);
	double normalized = per_call(cache, varied, N);
	double miss = per_call(cache, distinct, N / 4);
	struct sqlinfo_cache_stats s;
	sqlinfo_cache_get_stats(cache, &s);
	fprintf(
	    stderr,
	    "bench pgbench -S statement: exact hit %.0f ns, normalized hit %.0f ns, miss %.0f ns"
	    " (%" PRIu64 " hits, %" PRIu64 " normalized, %" PRIu64 " misses)\n",
	    exact, normalized, miss, s.hits, s.normalized_hits, s.misses);
	sqlinfo_cache_free(cache);
	sqlinfo_set_fingerprints(true);
	free(same);
	free(varied);
	free(distinct);
}

static void test_session_safe(void)
{
	/* what the server reports, and how clients spell it */
	CHECK(sqlinfo_session_safe("UTF8", "on"));
	CHECK(sqlinfo_session_safe("utf-8", "ON"));
	CHECK(sqlinfo_session_safe("SQL_ASCII", "on"));
	CHECK(sqlinfo_session_safe("LATIN1", "on"));
	CHECK(sqlinfo_session_safe("WIN1252", "on"));
	CHECK(sqlinfo_session_safe("EUC_JP", "on"));
	CHECK(sqlinfo_session_safe("KOI8U", "on"));
	/* backslashes in strings: the server would split differently */
	CHECK(!sqlinfo_session_safe("UTF8", "off"));
	CHECK(!sqlinfo_session_safe("UTF8", NULL));
	CHECK(!sqlinfo_session_safe("UTF8", ""));
	/* client-only encodings: a character may end with the byte of '\' */
	CHECK(!sqlinfo_session_safe("SJIS", "on"));
	CHECK(!sqlinfo_session_safe("Shift_JIS", "on"));
	CHECK(!sqlinfo_session_safe("SHIFT_JIS_2004", "on"));
	CHECK(!sqlinfo_session_safe("BIG5", "on"));
	CHECK(!sqlinfo_session_safe("GBK", "on"));
	CHECK(!sqlinfo_session_safe("UHC", "on"));
	CHECK(!sqlinfo_session_safe("GB18030", "on"));
	CHECK(!sqlinfo_session_safe("JOHAB", "on"));
	/* unknown or absent: not trusted */
	CHECK(!sqlinfo_session_safe(NULL, "on"));
	CHECK(!sqlinfo_session_safe("", "on"));
	CHECK(!sqlinfo_session_safe("klingon", "on"));
	CHECK(!sqlinfo_session_safe("utf8utf8utf8utf8utf8utf8utf8utf8utf8", "on"));

	/* The texts those settings would turn into a DROP are, to the
	 * analysis, one harmless SELECT: this is why the check exists. */
	static const char scs[] = "SELECT 'a\\' , '; DROP TABLE t; --'";
	static const char sjis[] = "SELECT E'\x95\\'; DROP TABLE t; --'";
	const char *texts[] = {scs, sjis};
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct sqlinfo *info = sqlinfo_analyse(texts[i], strlen(texts[i]));
		CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
		CHECK(info->n_stmts == 1 && info->stmts[0].kind == SQLINFO_SELECT &&
		      info->stmts[0].n_tables == 0);
		sqlinfo_free(info);
	}
}

static void *shutdown_unused_thread(void *arg)
{
	sqlinfo_shutdown(); /* this thread never parsed: must not crash */
	return arg;
}

static void test_shutdown(void)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, shutdown_unused_thread, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	sqlinfo_shutdown();
	sqlinfo_shutdown(); /* again: must not crash either */
	/* and the module still works afterwards */
	struct sqlinfo *info = sqlinfo_analyse("SELECT 1", 8);
	CHECK(info->error == SQLINFO_OK && info->n_stmts == 1);
	sqlinfo_free(info);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* What the timing loops call. */
static const char *op_sql;
static size_t op_len;
static struct sqlinfo_cache *op_cache;

static void op_parse(void)
{
	pg_query_free_parse_result(pg_query_parse(op_sql));
}

static void op_fingerprint(void)
{
	pg_query_free_fingerprint_result(pg_query_fingerprint(op_sql));
}

static void op_analyse(void)
{
	sqlinfo_free(sqlinfo_analyse(op_sql, op_len));
}

static void op_cache_hit(void)
{
	sqlinfo_free(sqlinfo_cache_analyse(op_cache, op_sql, op_len));
}

/* Microseconds per call of op, the best of five rounds of n calls: the
 * machine is shared, and the best round is the one least disturbed. */
static double best_of(int n, void (*op)(void))
{
	double best = 1e30;
	for (int r = 0; r < 5; r++) {
		double t0 = now_us();
		for (int i = 0; i < n; i++)
			op();
		double d = (now_us() - t0) / n;
		if (d < best)
			best = d;
	}
	return best;
}

/* Prints what an analysis costs; asserts nothing. SQLINFO_TIMING_N sets
 * the calls per round (0: skip). */
static void report_timing(void)
{
	static const struct {
		const char *name, *sql;
	} q[] = {
	    {"simple SELECT", "SELECT abalance FROM pgbench_accounts WHERE aid = 42"},
	    {"5-table join + subquery", "SELECT a.x, b.y, c.z FROM a JOIN b ON a.id = b.aid LEFT "
	                                "JOIN c ON c.bid = b.id JOIN d "
	                                "ON d.cid = c.id JOIN public.e ON e.did = d.id WHERE a.k "
	                                "IN (SELECT k FROM f WHERE f.v > "
	                                "10) AND b.w = 'x' ORDER BY 1 LIMIT 10"},
	};
	int n = getenv("SQLINFO_TIMING_N") ? atoi(getenv("SQLINFO_TIMING_N")) : 400;
	if (n <= 0)
		return;
	op_cache = sqlinfo_cache_new(SQLINFO_CACHE_DEFAULT);
	for (size_t k = 0; k < ARRAY_SIZE(q); k++) {
		op_sql = q[k].sql;
		op_len = strlen(op_sql);
		double parse = best_of(n, op_parse);
		double fp = best_of(n, op_fingerprint);
		double total = best_of(n, op_analyse);
		op_cache_hit();
		double hit = best_of(n, op_cache_hit);
		printf("timing %-24s parse %6.2f us  fingerprint %6.2f us  walk %6.2f us  "
		       "analyse %6.2f us  cache hit %5.3f us\n",
		       q[k].name, parse, fp, total - parse - fp, total, hit);
	}
	sqlinfo_cache_free(op_cache);
}

int main(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_case(&cases[i]);
	for (size_t i = 0; i < ARRAY_SIZE(multi_cases); i++)
		check_multi(&multi_cases[i]);
	for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++)
		check_error(&error_cases[i]);
	test_empty();
	test_fingerprints();
	test_references();
	test_derived();
	test_session_safe();
	test_limits();
	test_cache();
	test_normalized_cache();
	test_normalized_bypass();
	test_normalized_limits();
	test_normalized_property();
	printf("corpus: %zu statements, %zu multi-statement strings, %zu rejected texts\n",
	       ARRAY_SIZE(cases), ARRAY_SIZE(multi_cases), ARRAY_SIZE(error_cases));
	report_timing();
	bench_normalized();
	test_shutdown();
	sqlinfo_shutdown();
	return unit_summary("test_sqlinfo");
}
