//! A large audit log, loaded in bulk for the audit benchmark and the audit plan checks.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use uuid::Uuid;

/// The actions of the seeded events (twelve, in turn).
pub const ACTIONS: &str = "array['auth.login','tenant.update','member.role_change','member.remove','member.leave',\
                       'api_key.create','api_key.revoke','invitation.create','invitation.accept','sync_run.request',\
                       'testio_connection.replace','audit_log.export']";

/// Seeds `rows` events as the superuser: `big` in the first tenant, the rest spread over the others; users and API
/// keys (4 in 7), the system and the worker act; one event in 15 failed and one in 50 was denied; one in 5,000 mentions
/// "needle"; 30 s apart, going back from now. The secondary indexes are dropped first and built again afterwards
/// from their own definitions, then the table is vacuumed and analysed.
pub async fn seed(superuser_url: &str, tenants: &[Uuid], rows: i64, big: i64) {
    let db = Database::connect(superuser_url).await.unwrap();
    let indexes: Vec<String> = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_logs' AND indexname <> 'audit_logs_pkey'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "indexdef").unwrap())
        .collect();
    db.execute_unprepared(
        "DO $$ DECLARE i record; BEGIN FOR i IN SELECT indexname FROM pg_indexes WHERE tablename = 'audit_logs' \
         AND indexname <> 'audit_logs_pkey' LOOP EXECUTE 'DROP INDEX ' || quote_ident(i.indexname); END LOOP; END $$",
    )
    .await
    .unwrap();
    let others = (tenants.len() - 1) as i64;
    let each = (rows - big) / others.max(1);
    let list: Vec<String> = tenants.iter().map(|t| format!("'{t}'::uuid")).collect();
    let sql = format!(
        "INSERT INTO audit_logs (tenant_id, id, actor_type, actor_id, actor_display, action, target_type, target_id,
                                 target_display, metadata, ip_address, user_agent, request_id, outcome, created_at)
         SELECT t.id, gen_random_uuid(), kind, CASE WHEN kind IN ('user', 'api_key') THEN actor END,
                CASE WHEN kind IN ('user', 'api_key') THEN 'Person ' || (i % 40) || ' <p' || (i % 40) || '@example.com>'
                     ELSE kind END,
                action, split_part(action, '.', 1), target::text, 'Target ' || (i % 200),
                jsonb_build_object('note', CASE WHEN i % 5000 = 0 THEN 'needle ' ELSE 'routine ' END || i),
                ('10.0.' || (i % 250) || '.' || (i % 200))::inet, 'agent/' || (i % 7), 'req-' || i,
                CASE WHEN i % 50 = 0 THEN 'denied' WHEN i % 15 = 0 THEN 'failure' ELSE 'success' END,
                now() - make_interval(secs => i * 30)
           FROM (SELECT id, ord, CASE WHEN ord = 1 THEN {big} ELSE {each} END AS n
                   FROM unnest(array[{}]) WITH ORDINALITY AS u(id, ord)) t,
                generate_series(1, t.n) i,
                LATERAL (SELECT (array['user','user','user','user','api_key','system','worker'])[1 + i % 7] AS kind,
                                ({ACTIONS})[1 + (i * 7) % 12] AS action,
                                md5(t.id::text || (i % 40))::uuid AS actor,
                                md5(t.id::text || 'target' || (i % 200))::uuid AS target) x",
        list.join(", ")
    );
    db.execute_unprepared(&sql).await.unwrap();
    for index in indexes {
        db.execute_unprepared(&index).await.unwrap();
    }
    db.execute_unprepared("VACUUM ANALYZE audit_logs").await.unwrap();
}
