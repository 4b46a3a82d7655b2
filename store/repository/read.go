package repository

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
)

const (
	// spanMax bounds one ranged read; spanGap is the most unneeded bytes a read spans to
	// take the next blob along.
	spanMax = 4 << 20
	spanGap = 256 << 10
	// spansAhead is how many ranged reads of one ReadBlobs call are in flight at once.
	spansAhead = 3
)

// span is one ranged read of a pack and the blobs it covers.
type span struct {
	pack       string
	start, end int64
	items      []spanItem

	done chan struct{}
	data []byte
	err  error
}

type spanItem struct {
	i   int
	loc location
}

// ReadBlobs reads the named blobs and calls fn with each one's plaintext, in order; the
// slice is reused once fn returns. Blobs that lie near each other in a pack are fetched
// with one ranged read, and a few reads are in flight at once, so a file comes back in a
// few large requests rather than one per block. A blob whose range fails to read or to
// verify is read again on its own with Get, which tries its other copies.
func (r *Repo) ReadBlobs(ctx context.Context, names []string, fn func(i int, plain []byte) error) error {
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
				s.data, s.err = r.st.GetRange(ctx, packKey(s.pack), s.start, s.end-s.start)
				close(s.done)
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
		for _, it := range s.items {
			name := names[it.i]
			var err error
			if s.err == nil && int64(len(s.data)) == s.end-s.start {
				sealed := s.data[it.loc.Offset-s.start : it.loc.Offset-s.start+it.loc.Length]
				plain, err = r.openBlob(name, it.loc, sealed, plain)
			} else {
				err = s.err
			}
			if err != nil {
				// One copy failed: Get tries the others and says what is wrong if none is good.
				plain, err = r.Get(ctx, name, plain)
				if err != nil {
					return err
				}
			}
			if err := fn(it.i, plain); err != nil {
				return err
			}
		}
		s.data = nil
		if s.pack != "" {
			<-slots
		}
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
			loc.Offset+loc.Length-cur.start <= spanMax {
			cur.end = loc.Offset + loc.Length
			cur.items = append(cur.items, spanItem{i: i, loc: loc})
			continue
		}
		cur = &span{pack: loc.Pack, start: loc.Offset, end: loc.Offset + loc.Length, items: []spanItem{{i: i, loc: loc}}, done: make(chan struct{})}
		spans = append(spans, cur)
	}
	return spans, nil
}

// errReadAlone marks a span of one blob that Get reads on its own.
var errReadAlone = errors.New("read alone")
