// Package wal reads PostgreSQL write-ahead log files without a server: it
// names and parses segment and timeline history file names, and scans the
// bytes of WAL segments record by record, checking each record's CRC, to find
// the commit timestamps and named restore points that bound a point-in-time
// restore.
//
// Everything here treats its input as untrusted: a scan never panics, never
// allocates more than the bytes it has read, and stops at the first record
// that is not valid WAL, the way PostgreSQL's own reader decides where the
// log ends.
//
// The format is that of PostgreSQL 14 to 17 (the page magic numbers it
// accepts); it is tested against PostgreSQL 15's pg_waldump.
package wal
