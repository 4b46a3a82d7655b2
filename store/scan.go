package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// timeFormat is how times are stored: UTC, fixed width, to the microsecond,
// so that stored times sort and compare as strings.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// formatTime returns t as stored.
func formatTime(t time.Time) string {
	return t.UTC().Format(timeFormat)
}

// parseTime parses a stored time.
func parseTime(src any) (time.Time, error) {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case time.Time:
		return v.UTC(), nil
	default:
		return time.Time{}, fmt.Errorf("scan time: unexpected %T", src)
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		// Tolerate any RFC 3339 time, such as one written by hand.
		if t2, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("scan time: %w", err)
	}
	return t, nil
}

// timeScanner scans a NOT NULL time column.
type timeScanner struct{ dst *time.Time }

// Scan implements sql.Scanner.
func (s timeScanner) Scan(src any) error {
	if src == nil {
		return fmt.Errorf("scan time: unexpected NULL")
	}
	t, err := parseTime(src)
	*s.dst = t
	return err
}

// scanTime returns a sql.Scanner that stores a time column in dst.
func scanTime(dst *time.Time) sql.Scanner { return timeScanner{dst} }

// nullTimeScanner scans a nullable time column.
type nullTimeScanner struct{ dst **time.Time }

// Scan implements sql.Scanner.
func (s nullTimeScanner) Scan(src any) error {
	if src == nil {
		*s.dst = nil
		return nil
	}
	t, err := parseTime(src)
	if err != nil {
		return err
	}
	*s.dst = &t
	return nil
}

// scanNullTime returns a sql.Scanner that stores a nullable time column in
// dst, nil for NULL.
func scanNullTime(dst **time.Time) sql.Scanner { return nullTimeScanner{dst} }

// zeroScanner scans a nullable column, storing NULL as the zero value.
type zeroScanner[T any] struct{ dst *T }

// Scan implements sql.Scanner.
func (s zeroScanner[T]) Scan(src any) error {
	var n sql.Null[T]
	if err := n.Scan(src); err != nil {
		return err
	}
	*s.dst = n.V
	return nil
}

// orZero returns a sql.Scanner that stores a nullable column in dst, the
// zero value for NULL.
func orZero[T any](dst *T) sql.Scanner { return zeroScanner[T]{dst} }

// ptrScanner scans a nullable column into a pointer, nil for NULL.
type ptrScanner[T any] struct{ dst **T }

// Scan implements sql.Scanner.
func (s ptrScanner[T]) Scan(src any) error {
	var n sql.Null[T]
	if err := n.Scan(src); err != nil {
		return err
	}
	if !n.Valid {
		*s.dst = nil
		return nil
	}
	*s.dst = &n.V
	return nil
}

// orNil returns a sql.Scanner that stores a nullable column in dst, nil for
// NULL.
func orNil[T any](dst **T) sql.Scanner { return ptrScanner[T]{dst} }

// jsonScanner scans a nullable JSON text column.
type jsonScanner struct{ dst *json.RawMessage }

// Scan implements sql.Scanner.
func (s jsonScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.dst = nil
	case string:
		*s.dst = json.RawMessage(v)
	case []byte:
		*s.dst = json.RawMessage(append([]byte(nil), v...))
	default:
		return fmt.Errorf("scan json: unexpected %T", src)
	}
	return nil
}

// scanJSON returns a sql.Scanner that stores a JSON column in dst, nil for
// NULL.
func scanJSON(dst *json.RawMessage) sql.Scanner { return jsonScanner{dst} }

// nullIfZero returns v, or nil (NULL) when v is the zero value.
func nullIfZero[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// jsonArg returns raw as a TEXT argument, or nil (NULL) when it is empty.
// It reports a *ValidationError on field when raw is not valid JSON.
func jsonArg(field string, raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, invalid(field, "is not valid JSON")
	}
	return string(raw), nil
}

// jsonList returns vs as a JSON array, for "IN (SELECT value FROM
// json_each(?))".
func jsonList[T any](vs []T) string {
	b, err := json.Marshal(vs)
	if err != nil {
		panic(fmt.Sprintf("store: marshal list: %v", err)) // slices of strings and ints always marshal
	}
	return string(b)
}
