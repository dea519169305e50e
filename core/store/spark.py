"""Spark SQL as a store: PyHive's ``hive://`` dialect (the Spark Thrift Server's protocol), made to write.

PyHive's dialect reads well but was written for Hive's read side; cartsight's tables are plain Parquet
tables in Spark's catalog (``USING parquet``: no Delta, whose jars a cluster may not have), and those have
neither UPDATE, DELETE, sequences nor transactions. :class:`SparkDialect` is a thin subclass that adds what
the store's SQLAlchemy Core statements need, so the same statements run on DuckDB, PostgreSQL and Spark:

- **UPDATE and DELETE** compile to a rewrite of the table through a staging table: the table's rows, changed
  or filtered, are written to ``<table>__stage_<n>``, which is renamed ``<table>__restore_<n>`` once complete,
  copied back over the table (``INSERT OVERWRITE``), and dropped. Spark refuses to overwrite a table that the
  same statement reads, hence the staging table; the rename marks it complete, so a process killed during the
  copy leaves a ``__restore_`` table from which :func:`recover_rewrites` (run when the store is opened) puts
  the table back whole, and a ``__stage_`` table that it simply drops. The cost is a rewrite of the table per
  statement, which is why the loads avoid them on Spark where they can.
- **Sequences** (``seq.next_value()``) compile to one more than the largest id in the column the sequence
  numbers (found in the table layout, so no table is named here).
- **Transactions** do not exist: ``commit`` and ``rollback`` do nothing. Loads stay all-or-nothing by making
  a dataset visible in one last statement and removing what a failed load wrote (:mod:`core.store.datasets`).
- **Parameters** are rendered by this dialect (the Thrift protocol has no bound parameters; PyHive formats
  them client-side too): timestamps and dates as typed literals (Spark refuses to store a string in a
  timestamp column), numpy numbers as numbers, strings with Spark's escapes.
- Types: ``DateTime`` is ``TIMESTAMP_NTZ`` (the store keeps naive UTC times, whatever the session's time
  zone), ``Date`` is ``DATE``; primary keys and unique constraints are not declared (Spark has none).
"""
from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math
import re

import sqlalchemy as sa
from pyhive import sqlalchemy_hive
from sqlalchemy.sql import compiler

#: Between the statements one UPDATE or DELETE compiles to; :meth:`SparkDialect.do_execute` runs them in turn.
STATEMENT_BREAK = "\n;-- next statement\n"
STAGE, RESTORE = "__stage_", "__restore_"
#: Starts a statement whose rows decide whether the statements after it run (none: the change touches no row).
PROBE = "/* probe */ "
_counter = itertools.count()
#: Rows per INSERT when many rows are inserted at once (executemany): Spark parses a few thousand quickly.
MANY_ROWS = 2000


def _stage_names(table: str) -> tuple[str, str]:
    suffix = f"{dt.datetime.now(dt.UTC):%H%M%S%f}{next(_counter)}"
    return f"{table}{STAGE}{suffix}", f"{table}{RESTORE}{suffix}"


def escape(value) -> str:
    """A Python value as a Spark SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP_NTZ '{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        text = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
        return f"'{text}'"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(escape(v) for v in value) + ")"
    if hasattr(value, "item") and not isinstance(value, (int, float, decimal.Decimal)):
        value = value.item()  # numpy scalars
        return escape(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NULL"
        if math.isinf(value):
            return "double('infinity')" if value > 0 else "double('-infinity')"
        return repr(value) + "D"
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} to Spark SQL: {value!r}")


class _Timestamp(sa.types.TypeDecorator):
    """A naive timestamp, read back as a ``datetime`` whether the driver gives one or text."""
    impl = sa.DateTime
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        return value


class _Date(sa.types.TypeDecorator):
    """A date, read back as a ``date`` (the driver gives text)."""
    impl = sa.Date
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            return dt.date.fromisoformat(value[:10])
        if isinstance(value, dt.datetime):
            return value.date()
        return value


class SparkTypeCompiler(sqlalchemy_hive.HiveTypeCompiler):
    def visit_DATETIME(self, type_, **kw):
        return "TIMESTAMP_NTZ"

    def visit_TIMESTAMP(self, type_, **kw):
        return "TIMESTAMP_NTZ"

    def visit_DATE(self, type_, **kw):
        return "DATE"

    def visit_BOOLEAN(self, type_, **kw):
        return "BOOLEAN"

    def visit_NUMERIC(self, type_, **kw):
        """DECIMAL with the type's precision and scale: PyHive writes a bare DECIMAL, which Spark reads as
        DECIMAL(10, 0) (a price 9.99 stored as 10)."""
        if type_.precision is None:
            return "DECIMAL"
        return f"DECIMAL({type_.precision}, {type_.scale or 0})"

    visit_DECIMAL = visit_NUMERIC


class SparkDDLCompiler(compiler.DDLCompiler):
    def post_create_table(self, table):
        return "\nUSING parquet"

    def visit_primary_key_constraint(self, constraint, **kw):
        return None

    def visit_unique_constraint(self, constraint, **kw):
        return None

    def get_column_specification(self, column, **kw):
        return f"{self.preparer.format_column(column)} {self.dialect.type_compiler_instance.process(column.type)}"


class SparkCompiler(sqlalchemy_hive.HiveCompiler):
    """SQL for Spark: INSERT with its column list, UPDATE and DELETE as table rewrites, sequences as max + 1."""

    def visit_insert(self, insert_stmt, **kw):
        return compiler.SQLCompiler.visit_insert(self, insert_stmt, **kw)  # PyHive drops the column list

    def _generate_prefixes(self, stmt, prefixes, **kw):
        # a CTE's MATERIALIZED hint (PostgreSQL, DuckDB) is no Spark SQL: Spark decides what it reuses
        return super()._generate_prefixes(stmt, [p for p in prefixes if str(p[0]).upper() != "MATERIALIZED"], **kw)

    def visit_next_value_func(self, next_value, **kw):
        seq = next_value.sequence
        for table in (seq.metadata.tables.values() if seq.metadata is not None else ()):
            for column in table.columns:
                if column.default is seq:
                    return (f"(SELECT coalesce(max({self.preparer.quote(column.name)}), 0) + 1 "
                            f"FROM {self.preparer.format_table(table)})")
        raise sa.exc.CompileError(f"Spark has no sequences and no column is numbered by {seq.name}")

    def visit_update(self, update_stmt, **kw):
        table = update_stmt.table
        cond = sa.and_(*update_stmt._where_criteria) if update_stmt._where_criteria else sa.true()
        values = {(k if isinstance(k, str) else k.key): v for k, v in update_stmt._values.items()}
        cols = [sa.case((cond, sa.type_coerce(values[c.key], c.type)), else_=c).label(c.name)
                if c.key in values else c for c in table.columns]
        others = [f for f in sa.select(cond).get_final_froms() if f is not table]
        source, probe = table, sa.select(sa.literal(1)).select_from(table).where(cond)
        if others:  # UPDATE ... FROM: each row of the table meets the one row of the others that the WHERE joins
            joined = others[0] if len(others) == 1 else sa.select(*others).subquery()
            source = table.outerjoin(joined, cond)
            probe = sa.select(sa.literal(1)).select_from(table.join(joined, cond))
        return self._rewrite(table, sa.select(*cols).select_from(source), probe, **kw)

    def visit_delete(self, delete_stmt, **kw):
        table = delete_stmt.table
        cond = sa.and_(*delete_stmt._where_criteria) if delete_stmt._where_criteria else sa.true()
        if [f for f in sa.select(cond).get_final_froms() if f is not table]:
            raise sa.exc.CompileError("Spark store: a DELETE may name other tables only in subqueries")
        kept = sa.select(*table.columns).where(sa.not_(sa.func.coalesce(cond, sa.false())))
        return self._rewrite(table, kept, sa.select(sa.literal(1)).select_from(table).where(cond), **kw)

    def _rewrite(self, table: sa.Table, rows: sa.Select, probe: sa.Select, **kw) -> str:
        """The statements that replace ``table``'s rows by ``rows`` through a staging table (see the module),
        after a probe for a row the statement changes: without one the table is left as it is, unread again."""
        name = table.name
        stage, restore = _stage_names(name)
        q = self.preparer.quote
        opts = {k: v for k, v in kw.items() if k in ("literal_binds",)}
        select = self.process(rows, **opts)
        return STATEMENT_BREAK.join([
            PROBE + self.process(probe.limit(1), **opts),
            f"CREATE TABLE {q(stage)} USING parquet AS {select}",
            f"ALTER TABLE {q(stage)} RENAME TO {q(restore)}",
            f"INSERT OVERWRITE TABLE {q(name)} SELECT * FROM {q(restore)}",
            f"DROP TABLE {q(restore)}",
        ])


class SparkDialect(sqlalchemy_hive.HiveDialect):
    """PyHive's Hive dialect, able to write cartsight's tables on Spark SQL (see the module)."""
    name = "spark"
    statement_compiler = SparkCompiler
    ddl_compiler = SparkDDLCompiler
    type_compiler = SparkTypeCompiler
    type_compiler_cls = SparkTypeCompiler
    supports_sequences = False
    supports_statement_cache = False  # each UPDATE and DELETE compiles to its own staging table's name
    supports_native_boolean = True
    supports_multivalues_insert = True
    postfetch_lastrowid = False
    colspecs = {sa.DateTime: _Timestamp, sa.Date: _Date}

    def do_execute(self, cursor, statement, parameters, context=None):
        if parameters:
            if isinstance(parameters, dict):
                statement = statement % {k: escape(v) for k, v in parameters.items()}
            else:
                statement = statement % tuple(escape(v) for v in parameters)
        else:
            statement = statement.replace("%%", "%")
        self.do_execute_no_params(cursor, statement, context)

    def do_execute_no_params(self, cursor, statement, context=None):
        for part in statement.split(STATEMENT_BREAK):
            cursor.execute(part)
            if part.startswith(PROBE) and not cursor.fetchall():
                break

    def do_executemany(self, cursor, statement, parameters, context=None):
        head, values, row = statement.rpartition(" VALUES (")
        if not values or not head.lstrip().upper().startswith("INSERT") or STATEMENT_BREAK in statement:
            for params in parameters:
                self.do_execute(cursor, statement, params, context)
            return
        # one INSERT of many rows: each statement is a Spark job, one per row would take a second a few rows
        rows = [("(" + row) % {k: escape(v) for k, v in params.items()} for params in parameters]
        for start in range(0, len(rows), MANY_ROWS):
            cursor.execute(f"{head} VALUES {', '.join(rows[start:start + MANY_ROWS])}")

    def do_commit(self, dbapi_connection):
        pass

    def do_ping(self, dbapi_connection) -> bool:
        """Whether a pooled connection's server session still answers, asked by a Thrift GetInfo call: a
        ``SELECT 1`` would be a Spark job (and a statement) before every query a pooled connection serves."""
        from TCLIService import ttypes

        request = ttypes.TGetInfoReq(sessionHandle=dbapi_connection.sessionHandle,
                                     infoType=ttypes.TGetInfoType.CLI_SERVER_NAME)
        try:
            status = dbapi_connection.client.GetInfo(request).status.statusCode
        except Exception:  # noqa: BLE001 - a closed socket, a reset, a server gone: the transport's errors vary
            return False
        return status in (ttypes.TStatusCode.SUCCESS_STATUS, ttypes.TStatusCode.SUCCESS_WITH_INFO_STATUS)

    def has_table(self, connection, table_name, schema=None, **kw):
        return table_name.lower() in {n.lower() for n in self.get_table_names(connection, schema)}

    def get_table_names(self, connection, schema=None, **kw):
        query = "SHOW TABLES" + (f" IN {self.identifier_preparer.quote_identifier(schema)}" if schema else "")
        # Spark's rows are (namespace, tableName, isTemporary); session views are no tables of the store
        return [row[1] for row in connection.exec_driver_sql(query) if not row[2]]

    def get_indexes(self, connection, table_name, schema=None, **kw):
        return []


def recover_rewrites(conn: sa.Connection) -> list[str]:
    """Finish or undo the table rewrites a killed process left (see the module); returns the tables restored.

    A ``<table>__restore_<n>`` table is complete: it is copied over ``<table>`` (whose copy may have been cut
    off) and dropped. A ``<table>__stage_<n>`` table may be partial: it is dropped, its table untouched.
    """
    names = conn.dialect.get_table_names(conn)
    restored = []
    for name in names:
        target = re.split(f"{RESTORE}|{STAGE}", name)[0]
        if name == target or target not in names:
            continue
        if RESTORE in name:
            conn.exec_driver_sql(f"INSERT OVERWRITE TABLE `{target}` SELECT * FROM `{name}`")
            restored.append(target)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}`")
    return restored
