// Package storage is where a repository's bytes live: a small interface over a local
// directory or S3-compatible object storage. Keys are '/'-separated paths that are never
// a prefix of another key plus '/' (S3 servers with a POSIX backend cannot store both "a"
// and "a/b"). Objects are written whole and never modified in place.
package storage

import (
	"context"
	"errors"
)

// ErrNotExist is returned for a key that holds no object.
var ErrNotExist = errors.New("object does not exist")

// ErrExists is returned by Put with IfAbsent when the key already holds an object.
var ErrExists = errors.New("object already exists")

// Storage holds a repository's objects. Implementations are safe for concurrent use.
type Storage interface {
	// Put stores data under key, atomically: a reader sees the whole object or none.
	// With ifAbsent an existing object is left alone and Put returns ErrExists (a
	// conditional write, which is how repository locks and immutable objects are made
	// safe across processes and hosts).
	Put(ctx context.Context, key string, data []byte, ifAbsent bool) error
	// Get returns the whole object, or ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns length bytes of the object from offset, or ErrNotExist.
	GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error)
	// Size returns the object's size, or ErrNotExist.
	Size(ctx context.Context, key string) (int64, error)
	// List calls fn for every key that starts with prefix, in no particular order, with
	// its size. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	// Delete removes an object; a key that holds none is not an error.
	Delete(ctx context.Context, key string) error
	// Sync makes every Put that has returned durable (a local directory fsyncs the
	// directories it wrote into; object storage is durable on each Put already).
	Sync(ctx context.Context) error
	// String names the storage for messages: a directory, or s3://bucket/prefix.
	String() string
}

// KeyLister is a Storage that lists keys more cheaply without their sizes (a local
// directory stats each file for its size).
type KeyLister interface {
	ListKeys(ctx context.Context, prefix string, fn func(key string) error) error
}

// Keys calls fn for every key of st that starts with prefix, as List does but without
// sizes, through the storage's ListKeys when it has one.
func Keys(ctx context.Context, st Storage, prefix string, fn func(key string) error) error {
	if l, ok := st.(KeyLister); ok {
		return l.ListKeys(ctx, prefix, fn)
	}
	return st.List(ctx, prefix, func(key string, _ int64) error { return fn(key) })
}

// IntoGetter is a Storage that can read an object into a caller's buffer, sparing an
// allocation per object on the hot path of a restore.
type IntoGetter interface {
	GetInto(ctx context.Context, key string, buf []byte) ([]byte, error)
}

// GetInto reads the object at key into buf[:0], growing it as needed, through the
// storage's GetInto when it has one.
func GetInto(ctx context.Context, st Storage, key string, buf []byte) ([]byte, error) {
	if g, ok := st.(IntoGetter); ok {
		return g.GetInto(ctx, key, buf)
	}
	b, err := st.Get(ctx, key)
	if err != nil {
		return buf[:0], err
	}
	return append(buf[:0], b...), nil
}
