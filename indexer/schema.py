"""The catalog's schema, as an ordered list of sqlite-utils migrations.

Kept apart from the query code in `catalog.py` so the history of the schema reads top to
bottom: a new column or table is a new migration appended here, never an edit of an old
one, because libraries already in use have applied the old ones.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


def build_migrations() -> Migrations:
    """Return the migration set; built on demand so importing this module does nothing."""
    migrations = Migrations("kezhao")

    @migrations(name="0001_core")
    def core(db: Database) -> None:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE roots (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL UNIQUE,
                client TEXT,
                added_at TEXT NOT NULL,
                last_scan_at TEXT
            );
            CREATE TABLE clients (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE
            );
            CREATE TABLE photos (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL UNIQUE,
                root_id INTEGER REFERENCES roots(id),
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                content_hash TEXT NOT NULL,
                format TEXT,
                width INTEGER,
                height INTEGER,
                taken_at TEXT,
                taken_at_source TEXT,
                camera_make TEXT,
                camera_model TEXT,
                client_id INTEGER REFERENCES clients(id),
                client_source TEXT,
                project TEXT,
                description TEXT,
                sharpness REAL,
                shadows_clipped REAL,
                highlights_clipped REAL,
                brightness REAL,
                phash INTEGER,
                thumbnail TEXT,
                status TEXT NOT NULL DEFAULT 'ok',
                indexed_at TEXT NOT NULL,
                missing_since TEXT
            );
            CREATE INDEX photos_hash ON photos(content_hash);
            CREATE INDEX photos_client ON photos(client_id, status);
            CREATE INDEX photos_root ON photos(root_id);
            CREATE INDEX photos_taken ON photos(taken_at);
            CREATE TABLE embeddings (
                photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
                model_id TEXT NOT NULL,
                dim INTEGER NOT NULL,
                vector BLOB NOT NULL
            );
            CREATE TABLE failures (
                path TEXT PRIMARY KEY,
                root_id INTEGER REFERENCES roots(id),
                reason TEXT NOT NULL,
                message TEXT NOT NULL,
                size INTEGER,
                mtime_ns INTEGER,
                recorded_at TEXT NOT NULL
            );
            """
        )

    @migrations(name="0002_tags")
    def tags(db: Database) -> None:
        db.executescript(
            """
            CREATE TABLE tags (
                key TEXT PRIMARY KEY,
                label_zh TEXT NOT NULL,
                label_en TEXT NOT NULL,
                prompts TEXT NOT NULL DEFAULT '[]',
                source TEXT NOT NULL DEFAULT 'builtin',
                retired INTEGER NOT NULL DEFAULT 0,
                threshold REAL,
                updated_at TEXT NOT NULL
            );
            CREATE TABLE photo_tags (
                photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
                tag_key TEXT NOT NULL REFERENCES tags(key),
                state TEXT NOT NULL,
                score REAL,
                source TEXT,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (photo_id, tag_key)
            );
            CREATE INDEX photo_tags_tag ON photo_tags(tag_key, state);
            CREATE TABLE tag_decisions (
                id INTEGER PRIMARY KEY,
                batch_id INTEGER NOT NULL,
                photo_id INTEGER NOT NULL,
                tag_key TEXT NOT NULL,
                previous_state TEXT,
                previous_score REAL,
                previous_source TEXT,
                new_state TEXT NOT NULL,
                decided_at TEXT NOT NULL,
                undone INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX tag_decisions_batch ON tag_decisions(batch_id);
            CREATE TABLE tag_models (
                tag_key TEXT PRIMARY KEY REFERENCES tags(key),
                model_id TEXT NOT NULL,
                weights BLOB NOT NULL,
                bias REAL NOT NULL,
                positives INTEGER NOT NULL,
                negatives INTEGER NOT NULL,
                trained_at TEXT NOT NULL
            );
            """
        )

    @migrations(name="0003_trash_and_duplicates")
    def trash(db: Database) -> None:
        db.executescript(
            """
            CREATE TABLE trash (
                id INTEGER PRIMARY KEY,
                photo_id INTEGER REFERENCES photos(id),
                original_path TEXT NOT NULL,
                trash_path TEXT NOT NULL,
                size INTEGER,
                content_hash TEXT,
                state TEXT NOT NULL,
                reason TEXT,
                journaled_at TEXT NOT NULL,
                moved_at TEXT,
                restored_at TEXT,
                emptied_at TEXT
            );
            CREATE INDEX trash_state ON trash(state);
            CREATE TABLE duplicate_decisions (
                id INTEGER PRIMARY KEY,
                keeper_id INTEGER NOT NULL,
                trashed_ids TEXT NOT NULL,
                strictness TEXT NOT NULL,
                decided_at TEXT NOT NULL
            );
            """
        )

    @migrations(name="0004_ocr")
    def ocr(db: Database) -> None:
        db.executescript(
            """
            CREATE TABLE ocr_reads (
                photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
                content_hash TEXT NOT NULL,
                model_version TEXT NOT NULL,
                state TEXT NOT NULL,
                message TEXT,
                full_text TEXT NOT NULL DEFAULT '',
                read_at TEXT NOT NULL
            );
            CREATE TABLE ocr_lines (
                id INTEGER PRIMARY KEY,
                photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
                line_no INTEGER NOT NULL,
                text TEXT NOT NULL,
                confidence REAL NOT NULL,
                box TEXT NOT NULL
            );
            CREATE INDEX ocr_lines_photo ON ocr_lines(photo_id);
            CREATE VIRTUAL TABLE ocr_fts USING fts5(
                full_text, content='ocr_reads', content_rowid='photo_id', tokenize='trigram'
            );
            CREATE TRIGGER ocr_reads_ai AFTER INSERT ON ocr_reads BEGIN
                INSERT INTO ocr_fts(rowid, full_text) VALUES (new.photo_id, new.full_text);
            END;
            CREATE TRIGGER ocr_reads_ad AFTER DELETE ON ocr_reads BEGIN
                INSERT INTO ocr_fts(ocr_fts, rowid, full_text)
                VALUES ('delete', old.photo_id, old.full_text);
            END;
            CREATE TRIGGER ocr_reads_au AFTER UPDATE ON ocr_reads BEGIN
                INSERT INTO ocr_fts(ocr_fts, rowid, full_text)
                VALUES ('delete', old.photo_id, old.full_text);
                INSERT INTO ocr_fts(rowid, full_text) VALUES (new.photo_id, new.full_text);
            END;
            """
        )

    @migrations(name="0005_tag_vectors")
    def tag_vectors(db: Database) -> None:
        # Each tag's prompt-ensemble vector per model, so refreshing suggestions never
        # re-encodes prompts; `source_sha` says which prompts it was made from.
        db.executescript(
            """
            CREATE TABLE tag_vectors (
                tag_key TEXT NOT NULL REFERENCES tags(key),
                model_id TEXT NOT NULL,
                source_sha TEXT NOT NULL,
                vector BLOB NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (tag_key, model_id)
            );
            """
        )

    @migrations(name="0006_vector_changes")
    def vector_changes(db: Database) -> None:
        # Which photos' vectors changed since a point, so the FAISS file is updated in place
        # instead of rebuilt: one row per photo id ever indexed, holding the sequence number
        # of its last change to what the index must contain (its vector, or whether it is
        # searchable). Triggers keep it, so no code path that writes photos or embeddings
        # can forget to. No foreign key: the row must outlive a deleted photo. MAX(seq) is
        # the catalog's high-water mark; photo_id 0 (no photo has it) asks for a rebuild.
        # Existing photos are backfilled so the table covers the whole library.
        triggers = {
            "embeddings_vector_insert": ("AFTER INSERT ON embeddings", "new.photo_id"),
            "embeddings_vector_update": (
                "AFTER UPDATE ON embeddings WHEN old.vector IS NOT new.vector "
                "OR old.photo_id IS NOT new.photo_id",
                "new.photo_id",
            ),
            "embeddings_vector_delete": ("AFTER DELETE ON embeddings", "old.photo_id"),
            "photos_vector_status": (
                "AFTER UPDATE OF status ON photos "
                "WHEN (old.status = 'ok') IS NOT (new.status = 'ok')",
                "new.id",
            ),
            "photos_vector_delete": ("AFTER DELETE ON photos", "old.id"),
        }
        script = [
            "CREATE TABLE vector_changes (photo_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);",
            "CREATE INDEX vector_changes_seq ON vector_changes(seq);",
            # Counting searchable vectors (done on every update, to check it) then walks two
            # small indexes instead of every embedding's page: 330 -> 42 ms at 100k photos.
            "CREATE INDEX embeddings_photo ON embeddings(photo_id);",
            "INSERT INTO vector_changes(photo_id, seq) SELECT photo_id, photo_id FROM embeddings;",
        ]
        for name, (event, photo_id) in triggers.items():
            # No conflict clause anywhere: an outer "OR IGNORE" would override it.
            script.append(
                f"CREATE TRIGGER {name} {event} BEGIN "
                "UPDATE vector_changes SET seq = (SELECT MAX(seq) FROM vector_changes) + 1 "
                f"WHERE photo_id = {photo_id}; "
                f"INSERT INTO vector_changes(photo_id, seq) SELECT {photo_id}, "
                "COALESCE((SELECT MAX(seq) FROM vector_changes), 0) + 1 WHERE NOT EXISTS "
                f"(SELECT 1 FROM vector_changes WHERE photo_id = {photo_id}); END;"
            )
        db.executescript("\n".join(script))

    @migrations(name="0007_tag_calibration")
    def tag_calibration(db: Database) -> None:
        # What suggestions were last scored with, so an index run scores only its new photos
        # and a review click rescores only its tag. Per tag: the prior vector (prompts moved
        # by reviews) and its median/spread over the library; `signature` says which
        # prompts, reviews and classifier they came from. Per library (one row): its size
        # then, the spread pooled over all tags and the mean embedding (Rocchio's centre).
        db.executescript(
            """
            CREATE TABLE tag_calibrations (
                tag_key TEXT PRIMARY KEY REFERENCES tags(key),
                model_id TEXT NOT NULL,
                signature TEXT NOT NULL,
                prior BLOB,
                center REAL,
                scale REAL,
                n INTEGER NOT NULL,
                calibrated_at TEXT NOT NULL
            );
            CREATE TABLE tag_calibration_library (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                model_id TEXT NOT NULL,
                photos INTEGER NOT NULL,
                pooled_scale REAL NOT NULL,
                mean BLOB NOT NULL,
                calibrated_at TEXT NOT NULL
            );
            """
        )

    return migrations
