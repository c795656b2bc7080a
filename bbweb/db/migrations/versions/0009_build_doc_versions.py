"""builds.doc_version: a counter the database itself raises whenever a build's steps, logs
or properties change, so that a web process can keep a build's JSON document and know,
from the build's row alone, that it is still the build's document

Triggers rather than application code: every writer (the daemon, web actions, workers'
reports, a future feature, a hand-made SQL fix) raises it without having to remember to.
Log output does not: appending to a log changes only its size columns, which no build
document shows.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"  # irc_contacts
branch_labels = None
depends_on = None

BUMP = "UPDATE builds SET doc_version = doc_version + 1 WHERE id = {build}"
STEP_BUILD = "(SELECT buildid FROM steps WHERE id = {row}.stepid)"

# name -> (trigger event, statements over NEW/OLD)
SQLITE_TRIGGERS = {
    "steps_ins": ("AFTER INSERT ON steps", [BUMP.format(build="NEW.buildid")]),
    "steps_upd": ("AFTER UPDATE ON steps", [BUMP.format(build="OLD.buildid"),
                                            BUMP.format(build="NEW.buildid")]),
    "steps_del": ("AFTER DELETE ON steps", [BUMP.format(build="OLD.buildid")]),
    "logs_ins": ("AFTER INSERT ON logs", [BUMP.format(build=STEP_BUILD.format(row="NEW"))]),
    "logs_upd": ("AFTER UPDATE OF stepid, name ON logs",
                 [BUMP.format(build=STEP_BUILD.format(row="OLD")),
                  BUMP.format(build=STEP_BUILD.format(row="NEW"))]),
    "logs_del": ("AFTER DELETE ON logs", [BUMP.format(build=STEP_BUILD.format(row="OLD"))]),
    "props_ins": ("AFTER INSERT ON build_properties", [BUMP.format(build="NEW.buildid")]),
    "props_upd": ("AFTER UPDATE ON build_properties", [BUMP.format(build="OLD.buildid"),
                                                       BUMP.format(build="NEW.buildid")]),
    "props_del": ("AFTER DELETE ON build_properties", [BUMP.format(build="OLD.buildid")]),
}

PG_FUNCTIONS = {
    # rows that name their build
    "bbweb_build_doc_by_build": "{row}.buildid",
    # log rows name their step
    "bbweb_build_doc_by_step": STEP_BUILD,
}
PG_TRIGGERS = {
    "steps": ("AFTER INSERT OR UPDATE OR DELETE ON steps", "bbweb_build_doc_by_build"),
    "logs": ("AFTER INSERT OR DELETE OR UPDATE OF stepid, name ON logs",
             "bbweb_build_doc_by_step"),
    "props": ("AFTER INSERT OR UPDATE OR DELETE ON build_properties",
              "bbweb_build_doc_by_build"),
}


def upgrade() -> None:
    op.add_column("builds", sa.Column("doc_version", sa.Integer(), server_default="0",
                                      nullable=False))
    if op.get_bind().dialect.name == "sqlite":
        for name, (event, statements) in SQLITE_TRIGGERS.items():
            body = "; ".join(statements)
            op.execute(f"CREATE TRIGGER build_doc_{name} {event} FOR EACH ROW "
                       f"BEGIN {body}; END")
        return
    for function, build in PG_FUNCTIONS.items():
        old = BUMP.format(build=build.format(row="OLD"))
        new = BUMP.format(build=build.format(row="NEW"))
        op.execute(f"""
CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN {old}; END IF;
    IF TG_OP <> 'DELETE' THEN {new}; END IF;
    RETURN NULL;
END $$""")
    for name, (event, function) in PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER build_doc_{name} {event} FOR EACH ROW "
                   f"EXECUTE PROCEDURE {function}()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER build_doc_{name}")
    else:
        for name, (event, _function) in PG_TRIGGERS.items():
            table = event.rsplit(" ON ", 1)[1]
            op.execute(f"DROP TRIGGER build_doc_{name} ON {table}")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {function}()")
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("doc_version")
