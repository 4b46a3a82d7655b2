package repository

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
)

const (
	// spanMax bounds one ranged read and what it holds once opened; spanGap is the most
	// unneeded bytes a read spans to take the next blob along.
	spanMax = 2 << 20
	spanGap = 256 << 10
	// spansAhead is how many ranged reads of one ReadBlobs call are fetched and opened at
	// once, ahead of the caller: with files read in parallel too, a large file is not read
	// by one core.
	spansAhead = 3
)

// span is one ranged read of a pack and the blobs it covers: consecutive blobs of the
// caller's list.
type span struct {
	pack       string
	start, end int64
	plainSize  int64
	items      []spanItem

	done   chan struct{}
	plains [][]byte // each item's plaintext, once opened; nil when it failed
	err    error
}

type spanItem struct {
	i   int
	loc location
}

// ReadOptions tune ReadBlobs.
type ReadOptions struct {
	// SkipNameCheck skips recomputing each blob's keyed hash from its plaintext, for a
	// caller that checks the content itself (a restore checks every file's CRC-32C). The
	// seal, which binds each blob to its name, is checked either way.
	SkipNameCheck bool
}

// ReadBlobs reads the named blobs and calls fn with each one's plaintext, in order; the
// slice must not be kept once fn returns. Blobs that lie next to each other in a pack are
// fetched with one ranged read and opened together, a few reads ahead of fn, so a file
// comes back in a few large requests and is opened on more than one core. A blob that
// fails to read or to verify is read again on its own with Get, which tries its other
// copies and says what is wrong when none is good.
func (r *Repo) ReadBlobs(ctx context.Context, names []string, opts ReadOptions, fn func(i int, plain []byte) error) error {
	spans, err := r.plan(ctx, names)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make(chan struct{}, spansAhead)
	go func() {
		for _, s := range spans {
			if s.pack == "" {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer close(s.done)
				s.err = r.openSpan(ctx, names, s, !opts.SkipNameCheck)
			}()
		}
	}()
	var plain []byte
	for _, s := range spans {
		select {
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		for k, it := range s.items {
			var p []byte
			if s.err == nil && s.plains[k] != nil {
				p = s.plains[k]
			} else {
				// Get tries the other copies and says what is wrong if none is good.
				var err error
				if plain, err = r.Get(ctx, names[it.i], plain); err != nil {
					return err
				}
				p = plain
			}
			if err := fn(it.i, p); err != nil {
				return err
			}
		}
		s.plains = nil
		if s.pack != "" {
			<-slots
		}
	}
	return nil
}

// openSpan reads a span and opens its blobs into one buffer; a blob that fails is left
// nil for the caller to read alone.
func (r *Repo) openSpan(ctx context.Context, names []string, s *span, checkName bool) error {
	data, err := r.st.GetRange(ctx, packKey(s.pack), s.start, s.end-s.start)
	if err != nil {
		return err
	}
	if int64(len(data)) != s.end-s.start {
		return errReadAlone
	}
	buf := make([]byte, 0, s.plainSize)
	s.plains = make([][]byte, len(s.items))
	for k, it := range s.items {
		sealed := data[it.loc.Offset-s.start : it.loc.Offset-s.start+it.loc.Length]
		at := len(buf)
		plain, err := r.openBlobChecked(names[it.i], it.loc, sealed, buf[at:at], checkName)
		if err != nil {
			continue // the caller reads it alone
		}
		if len(plain) <= cap(buf)-at {
			buf = buf[:at+len(plain)] // opened in place
		}
		s.plains[k] = plain
	}
	return nil
}

// plan finds every blob and groups neighbours into spans.
func (r *Repo) plan(ctx context.Context, names []string) ([]*span, error) {
	sums := make([][32]byte, len(names))
	for i, name := range names {
		if !validObjectName(name) {
			return nil, fmt.Errorf("read blobs: invalid object name %q", name)
		}
		hex.Decode(sums[i][:], []byte(name))
	}
	found, err := r.cache.readable(ctx, sums)
	if err != nil {
		return nil, fmt.Errorf("read blobs: %w", err)
	}
	var spans []*span
	var cur *span
	for i := range names {
		loc, ok := found[sums[i]]
		if _, mem := r.pending(sums[i]); mem || !ok {
			// In memory still, or unknown here: Get reads it, or refreshes the index and
			// says what is wrong.
			cur = nil
			alone := &span{items: []spanItem{{i: i}}, done: make(chan struct{}), err: errReadAlone}
			close(alone.done)
			spans = append(spans, alone)
			continue
		}
		if cur != nil && cur.pack == loc.Pack && loc.Offset >= cur.end && loc.Offset-cur.end <= spanGap &&
			loc.Offset+loc.Length-cur.start <= spanMax && cur.plainSize+loc.Size <= spanMax {
			cur.end = loc.Offset + loc.Length
			cur.plainSize += loc.Size
			cur.items = append(cur.items, spanItem{i: i, loc: loc})
			continue
		}
		cur = &span{pack: loc.Pack, start: loc.Offset, end: loc.Offset + loc.Length, plainSize: loc.Size,
			items: []spanItem{{i: i, loc: loc}}, done: make(chan struct{})}
		spans = append(spans, cur)
	}
	return spans, nil
}

// errReadAlone marks a span of one blob that Get reads on its own.
var errReadAlone = errors.New("read alone")
