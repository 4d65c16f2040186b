"""Make the audit log append-only in the database itself: UPDATE, DELETE and TRUNCATE are refused by triggers."""

from django.db import migrations

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION security_auditlog_refuse_change() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER security_auditlog_no_update_delete
    BEFORE UPDATE OR DELETE ON security_auditlog
    FOR EACH ROW EXECUTE FUNCTION security_auditlog_refuse_change()
    """,
    """
    CREATE TRIGGER security_auditlog_no_truncate
    BEFORE TRUNCATE ON security_auditlog
    FOR EACH STATEMENT EXECUTE FUNCTION security_auditlog_refuse_change()
    """,
]
REVERSE = [
    "DROP TRIGGER IF EXISTS security_auditlog_no_truncate ON security_auditlog",
    "DROP TRIGGER IF EXISTS security_auditlog_no_update_delete ON security_auditlog",
    "DROP FUNCTION IF EXISTS security_auditlog_refuse_change()",
]


class Migration(migrations.Migration):
    dependencies = [("security", "0001_initial")]

    operations = [migrations.RunSQL(sql=FORWARD, reverse_sql=REVERSE)]
