"""The Spark SQL dialect (core.store.spark) compiles the store's statements for Spark, without a server:
UPDATE and DELETE as staged table rewrites, sequences as max + 1, typed literals, Parquet tables."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

pytest.importorskip("pyhive", reason="the spark extra is not installed (pip install -e '.[spark]')")

from core import store  # noqa: E402
from core.store import spark  # noqa: E402
from core.store.engine import spark_url  # noqa: E402

DIALECT = sa.create_engine("spark://127.0.0.1:1/cs").dialect  # with the driver's paramstyle; connects nowhere


def _sql(stmt) -> str:
    return str(stmt.compile(dialect=DIALECT))


def test_a_thrift_server_url_is_served_by_cartsight_s_spark_dialect():
    assert spark_url("hive://127.0.0.1:10001/default?auth=NOSASL") == "spark://127.0.0.1:10001/default?auth=NOSASL"
    assert spark_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    engine = sa.create_engine(spark_url("hive://127.0.0.1:10001/cs"))
    assert isinstance(engine.dialect, spark.SparkDialect)
    assert engine.dialect.create_connect_args(engine.url)[1]["database"] == "cs"


def test_an_update_rewrites_the_table_through_a_staging_table_after_a_probe():
    e = store.stored_events
    parts = _sql(e.update().where(e.c.dataset_id == 3).values(price_band=None)).split(spark.STATEMENT_BREAK)
    assert parts[0].startswith(spark.PROBE) and "LIMIT" in parts[0] and "`cs_events`.`dataset_id` =" in parts[0]
    stage = parts[1].split("`")[1]
    restore = stage.replace(spark.STAGE, spark.RESTORE)
    assert stage.startswith("cs_events__stage_")
    assert parts[1].startswith(f"CREATE TABLE `{stage}` USING parquet AS SELECT")
    # every column kept in the table's order; the band set to NULL only where the WHERE holds
    assert "CASE WHEN (`cs_events`.`dataset_id` = " in parts[1] and "ELSE `cs_events`.`price_band` END" in parts[1]
    assert parts[2:] == [f"ALTER TABLE `{stage}` RENAME TO `{restore}`",
                         f"INSERT OVERWRITE TABLE `cs_events` SELECT * FROM `{restore}`", f"DROP TABLE `{restore}`"]


def test_an_update_from_another_table_joins_it_and_a_delete_keeps_the_rows_its_where_does_not_hold():
    e, s = store.stored_events, sa.table("renumbered", sa.column("user_id"), sa.column("sid"))
    update = _sql(e.update().where(e.c.dataset_id == 1, e.c.user_id == s.c.user_id).values(session_id=s.c.sid))
    assert "LEFT OUTER JOIN `renumbered` ON" in update.split(spark.STATEMENT_BREAK)[1]
    assert "JOIN `renumbered` ON" in update.split(spark.STATEMENT_BREAK)[0]  # the probe: matched rows only
    delete = _sql(store.mappings.delete().where(store.mappings.c.signature == "abc"))
    assert "WHERE NOT coalesce(`cs_mappings`.`signature` = " in delete.split(spark.STATEMENT_BREAK)[1]


def test_a_sequence_is_one_more_than_the_largest_id_of_the_column_it_numbers():
    assert _sql(sa.select(store.dataset_id_seq.next_value())) == (
        "SELECT (SELECT coalesce(max(`dataset_id`), 0) + 1 FROM `cs_datasets`) AS `next_value_1`")
    assert "max(`export_id`), 0) + 1 FROM `cs_exports`" in _sql(sa.select(store.export_id_seq.next_value()))


def test_tables_are_parquet_with_naive_timestamps_and_no_keys():
    ddl = str(sa.schema.CreateTable(store.datasets).compile(dialect=DIALECT))
    assert ddl.rstrip().endswith("USING parquet")
    assert "`created_at` TIMESTAMP_NTZ" in ddl and "PRIMARY KEY" not in ddl and "UNIQUE" not in ddl
    assert "`day` DATE" in str(sa.schema.CreateTable(store.session_days).compile(dialect=DIALECT))


def test_a_decimal_keeps_its_precision_and_scale():
    """PyHive wrote a bare DECIMAL, which Spark reads as DECIMAL(10, 0): a team's price 9.99 was stored as 10."""
    prices = sa.Table("prices", sa.MetaData(), sa.Column("price", sa.Numeric(10, 2)), sa.Column("n", sa.Numeric()))
    ddl = str(sa.schema.CreateTable(prices).compile(dialect=DIALECT))
    assert "`price` DECIMAL(10, 2)" in ddl and "`n` DECIMAL" in ddl
    assert str(sa.cast(sa.column("x"), sa.Numeric(12, 4)).compile(dialect=DIALECT)) == "CAST(`x` AS DECIMAL(12, 4))"


@pytest.mark.parametrize("value, literal", [
    (dt.datetime(2024, 1, 2, 3, 4, 5, 6), "TIMESTAMP_NTZ '2024-01-02 03:04:05.000006'"),
    (dt.date(2024, 1, 2), "DATE '2024-01-02'"),
    ("it's a \\ back", "'it\\'s a \\\\ back'"),
    (None, "NULL"), (True, "TRUE"), (float("nan"), "NULL"), (2.5, "2.5D"), (7, "7"),
])
def test_parameters_become_spark_literals(value, literal):
    assert spark.escape(value) == literal


def test_numpy_numbers_are_sent_as_numbers():
    np = pytest.importorskip("numpy")
    assert spark.escape(np.int64(5)) == "5" and spark.escape(np.float32(0.5)) == "0.5D"


def test_many_rows_are_inserted_by_one_statement_per_thousands_of_rows():
    class Cursor:
        def __init__(self):
            self.sent = []

        def execute(self, sql):
            self.sent.append(sql)

    m = store.mappings
    rows = [{"signature": f"s{i}", "mapping_json": "{}", "updated_at": dt.datetime(2024, 1, 1)}
            for i in range(spark.MANY_ROWS + 1)]
    compiled = m.insert().compile(dialect=DIALECT)
    cursor = Cursor()
    DIALECT.do_executemany(cursor, str(compiled), [compiled.construct_params(r) for r in rows])
    assert len(cursor.sent) == 2 and cursor.sent[1].endswith(
        f"VALUES ('s{spark.MANY_ROWS}', '{{}}', TIMESTAMP_NTZ '2024-01-01 00:00:00')")
    assert cursor.sent[0].count("TIMESTAMP_NTZ") == spark.MANY_ROWS


class _Session:
    """A PyHive connection as the pool's ping sees it: its Thrift client and session handle, no cursor."""

    def __init__(self, answer):
        self.sessionHandle, self.asked = "handle", []
        self.client = self
        self.answer = answer

    def GetInfo(self, request):  # noqa: N802 - Thrift's name
        from TCLIService import ttypes

        self.asked.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return ttypes.TGetInfoResp(status=ttypes.TStatus(statusCode=self.answer))

    def cursor(self):
        raise AssertionError("the ping ran a statement: on Spark each one is a job")


def test_a_pooled_connection_is_pinged_by_a_thrift_call_not_by_a_statement():
    from thrift.transport.TTransport import TTransportException
    from TCLIService import ttypes

    alive = _Session(ttypes.TStatusCode.SUCCESS_STATUS)
    assert DIALECT.do_ping(alive) is True
    assert alive.asked[0].sessionHandle == "handle"
    assert DIALECT.do_ping(_Session(ttypes.TStatusCode.INVALID_HANDLE_STATUS)) is False  # a session the server lost
    assert DIALECT.do_ping(_Session(TTransportException(message="Broken pipe"))) is False  # a server gone
