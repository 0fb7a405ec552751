use rusqlite::{params, Connection, TransactionBehavior};
use std::time::Instant;

fn open(p: &str, head: bool) -> Connection {
    let _ = std::fs::remove_file(p); let _ = std::fs::remove_file(format!("{p}-wal")); let _ = std::fs::remove_file(format!("{p}-shm"));
    let c = Connection::open(p).unwrap();
    c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE readings (seq INTEGER PRIMARY KEY, run_id INTEGER, instrument_id INTEGER, quantity TEXT, value REAL, status TEXT, unit TEXT, raw TEXT, utc_us INTEGER, mono_ns INTEGER, boot_id TEXT, chain BLOB);").unwrap();
    if head { c.execute_batch("CREATE TABLE chain_head (id INTEGER PRIMARY KEY, seq INTEGER, chain BLOB); INSERT INTO chain_head VALUES (1, 0, zeroblob(32));").unwrap(); }
    c
}
const INS: &str = "INSERT INTO readings VALUES (?1, 1, 1, 'voltage', 10.0000023, 'valid', 'V', '+1.00000023E+01', ?1, ?1, '93bbe8da-4f00-43c3-82f9-27fd4c361029', ?2)";
fn main() {
    let n = 300;
    let mut a = open("target/y_auto.db", false);
    let mut t = open("target/y_tx.db", false);
    let mut h = open("target/y_head.db", true);
    let (mut ia, mut it, mut ih) = (0i64, 0i64, 0i64);
    let (mut sa, mut st, mut sh) = (vec![], vec![], vec![]);
    for _ in 0..15 {
        let s = Instant::now();
        for _ in 0..n { ia += 1; a.prepare_cached(INS).unwrap().execute(params![ia, &[1u8;32][..]]).unwrap(); }
        sa.push(s.elapsed().as_secs_f64()*1e6/n as f64);
        let s = Instant::now();
        for _ in 0..n { it += 1; let tx = t.transaction_with_behavior(TransactionBehavior::Immediate).unwrap(); tx.prepare_cached(INS).unwrap().execute(params![it, &[1u8;32][..]]).unwrap(); tx.commit().unwrap(); }
        st.push(s.elapsed().as_secs_f64()*1e6/n as f64);
        let s = Instant::now();
        for _ in 0..n { ih += 1; let tx = h.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            let _x: i64 = tx.prepare_cached("SELECT seq FROM chain_head WHERE id=1").unwrap().query_row([], |r| r.get(0)).unwrap();
            tx.prepare_cached(INS).unwrap().execute(params![ih, &[1u8;32][..]]).unwrap();
            tx.prepare_cached("UPDATE chain_head SET seq=?1, chain=?2 WHERE id=1").unwrap().execute(params![ih, &[1u8;32][..]]).unwrap(); tx.commit().unwrap(); }
        sh.push(s.elapsed().as_secs_f64()*1e6/n as f64);
    }
    let med = |mut v: Vec<f64>| { v.sort_by(f64::total_cmp); v[v.len()/2] };
    println!("autocommit {:.1}  tx {:.1}  tx+head {:.1}", med(sa), med(st), med(sh));
    drop(a); drop(t); drop(h);
}
