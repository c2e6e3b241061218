"""Guarantees the database keeps even if application code is bypassed:

* ledger transactions, entries and closed statements are append-only (UPDATE/DELETE raise);
  corrections are reversal transactions;
* every transaction balances: at commit (deferred constraint trigger) its entries sum to zero,
  there are at least two, and all are in the transaction's currency.
"""

from django.db import migrations

APPEND_ONLY_TABLES = [
    "royalties_ledgertransaction",
    "royalties_ledgerentry",
    "royalties_statement",
]

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION royalties_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed (post a reversal instead)',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""

BALANCED = """
CREATE FUNCTION royalties_transaction_balanced() RETURNS trigger AS $$
DECLARE
    total bigint;
    n integer;
    foreign_currency integer;
BEGIN
    SELECT COALESCE(SUM(e.amount_minor), 0), COUNT(*),
           COUNT(*) FILTER (WHERE e.currency <> t.currency)
        INTO total, n, foreign_currency
        FROM royalties_ledgertransaction t
        LEFT JOIN royalties_ledgerentry e ON e.transaction_id = t.id
        WHERE t.id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: entries sum to %',
            NEW.transaction_id, total USING ERRCODE = 'check_violation';
    END IF;
    IF n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % entries; a posting needs two sides',
            NEW.transaction_id, n USING ERRCODE = 'check_violation';
    END IF;
    IF foreign_currency > 0 THEN
        RAISE EXCEPTION 'ledger transaction % mixes currencies', NEW.transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER ledger_transaction_balanced
    AFTER INSERT ON royalties_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION royalties_transaction_balanced();
"""


def _append_only_triggers() -> str:
    return "\n".join(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION royalties_append_only();"
        for table in APPEND_ONLY_TABLES
    )


def _drop_append_only_triggers() -> str:
    return (
        "\n".join(f"DROP TRIGGER {table}_append_only ON {table};" for table in APPEND_ONLY_TABLES)
        + "DROP FUNCTION royalties_append_only();"
    )


class Migration(migrations.Migration):
    dependencies = [("royalties", "0001_initial")]

    operations = [
        migrations.RunSQL(
            APPEND_ONLY_FUNCTION + _append_only_triggers(),
            reverse_sql=_drop_append_only_triggers(),
        ),
        migrations.RunSQL(
            BALANCED,
            reverse_sql="DROP TRIGGER ledger_transaction_balanced ON royalties_ledgerentry;"
            "DROP FUNCTION royalties_transaction_balanced();",
        ),
    ]
