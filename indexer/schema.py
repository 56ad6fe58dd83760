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

    return migrations
