package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// How Go values map onto columns, in one place:
//   - every timestamp is UTC unix milliseconds; columns that may be unset
//     (finished_at) hold NULL for the zero time;
//   - JSON columns hold the caller's bytes as TEXT after a validity check,
//     NULL for an empty value;
//   - booleans are 0 or 1.

func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// toNullMillis maps the zero time to NULL.
func toNullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromNullMillis maps NULL to the zero time.
func fromNullMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMillis(v.Int64)
}

// toJSON checks raw and maps an empty value to NULL. field names the value
// in the error.
func toJSON(field string, raw json.RawMessage) (sql.NullString, error) {
	if len(raw) == 0 {
		return sql.NullString{}, nil
	}
	if !json.Valid(raw) {
		return sql.NullString{}, fmt.Errorf("%s: %w: not valid JSON", field, ErrInvalid)
	}
	return sql.NullString{String: string(raw), Valid: true}, nil
}

// fromJSON maps NULL to nil.
func fromJSON(v sql.NullString) json.RawMessage {
	if !v.Valid {
		return nil
	}
	return json.RawMessage(v.String)
}
