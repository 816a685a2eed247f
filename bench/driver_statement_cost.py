import time, uuid
from sqlalchemy import text, update, bindparam
from adapters.sql.engine import make_engine
from adapters.sql.tables import holds, credit_accounts
from sqlalchemy import insert
e = make_engine("postgresql+psycopg://postgres@127.0.0.1/test")
with e.begin() as c:
    c.execute(text("create temp table if not exists t_h (id varchar primary key, account_id int, decision_id varchar, order_id varchar, amount_fen bigint, status varchar, counting bool, created_at timestamptz, expires_at timestamptz, ended_at timestamptz, settled_fen bigint)"))
import datetime
now = datetime.datetime.now(datetime.UTC)
from sqlalchemy import table, column, Integer, String, BigInteger, Boolean, DateTime, MetaData, Table, Column
md = MetaData()
t = Table("t_h", md, *[Column(c.name, c.type) for c in holds.c])
stmt = insert(t)
N = 2000
with e.connect() as c:
    c.execute(text("create temp table if not exists t_h (id varchar primary key, account_id int, decision_id varchar, order_id varchar, amount_fen bigint, status varchar, counting bool, created_at timestamptz, expires_at timestamptz, ended_at timestamptz, settled_fen bigint)"))
    def params():
        return dict(id=uuid.uuid4().hex, account_id=1, decision_id="d", order_id="o", amount_fen=100, status="open", counting=True, created_at=now, expires_at=now, ended_at=None, settled_fen=0)
    ps = [params() for _ in range(N)]
    for p in ps[:100]: c.execute(stmt, p)
    t0 = time.process_time()
    for p in ps[100:]: c.execute(stmt, p)
    sa = (time.process_time() - t0) / (N - 100) * 1e6
    ps = [params() for _ in range(N)]
    raw = c.connection.driver_connection
    sql = "INSERT INTO t_h (id, account_id, decision_id, order_id, amount_fen, status, counting, created_at, expires_at, ended_at, settled_fen) VALUES (%(id)s, %(account_id)s, %(decision_id)s, %(order_id)s, %(amount_fen)s, %(status)s, %(counting)s, %(created_at)s, %(expires_at)s, %(ended_at)s, %(settled_fen)s)"
    cur = raw.cursor()
    for p in ps[:100]: cur.execute(sql, p)
    t0 = time.process_time()
    for p in ps[100:]: cur.execute(sql, p)
    rw = (time.process_time() - t0) / (N - 100) * 1e6
    ps = [params() for _ in range(N)]
    t0 = time.process_time()
    for p in ps[100:]: c.exec_driver_sql(sql, p)
    dr = (time.process_time() - t0) / (N - 100) * 1e6
    print(f"SQLAlchemy execute {sa:.0f} us CPU, exec_driver_sql {dr:.0f} us, raw cursor {rw:.0f} us (incl. round trip syscalls)")
    c.rollback()
