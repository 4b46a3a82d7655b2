package repository

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/backstop/backstop/store/repository/storage"
)

// Contents describes what a repository's storage holds, without the key: its backup
// manifests, the systems whose WAL it has, its source records, and whether it holds
// objects at all; "" when it holds none of them (a new repository). It lists keys only, so it is cheap enough to
// call when something looks wrong, not on every start.
func Contents(ctx context.Context, st storage.Storage) (string, error) {
	manifests := 0
	err := storage.Keys(ctx, st, "backups/", func(key string) error {
		if strings.HasSuffix(key, manifestSuffix) {
			manifests++
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("repository contents: %w", err)
	}
	systems := map[string]bool{}
	err = storage.Keys(ctx, st, walDir+"/", func(key string) error {
		if sys, _, ok := strings.Cut(strings.TrimPrefix(key, walDir+"/"), "/"); ok {
			systems[sys] = true
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("repository contents: %w", err)
	}
	sources := 0
	err = storage.Keys(ctx, st, sourceDir, func(key string) error {
		if strings.HasSuffix(key, sourceSuffix) {
			sources++
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("repository contents: %w", err)
	}
	var parts []string
	if manifests > 0 {
		parts = append(parts, fmt.Sprintf("%d backup manifest(s)", manifests))
	}
	if len(systems) > 0 {
		parts = append(parts, fmt.Sprintf("WAL of %d system(s)", len(systems)))
	}
	if sources > 0 {
		parts = append(parts, fmt.Sprintf("%d source record(s)", sources))
	}
	if len(parts) == 0 {
		// Packs without a manifest: an interrupted first backup, or manifests lost too.
		found := errors.New("found")
		err := st.List(ctx, packDir, func(string, int64) error { return found })
		if errors.Is(err, found) {
			parts = append(parts, "stored blocks")
		} else if err != nil {
			return "", fmt.Errorf("repository contents: %w", err)
		}
	}
	return strings.Join(parts, " and "), nil
}
