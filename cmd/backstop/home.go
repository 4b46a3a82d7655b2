package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// home is the one directory where every command finds its state: the catalog, the
// repository and its key. Commands work whether or not `serve` is running.
type home struct {
	dir   string
	store *store.Store
	repo  *repository.Repo
}

// keyEnv names the environment variable that may hold the repository key (hex) instead of
// the key file.
const keyEnv = "BACKSTOP_REPOSITORY_KEY"

// defaultHome is $BACKSTOP_HOME, else /var/lib/backstop for root (so that the postgres OS
// user can reach the sandbox clusters below it), else the per-user data directory.
func defaultHome() string {
	if h := os.Getenv("BACKSTOP_HOME"); h != "" {
		return h
	}
	if os.Geteuid() == 0 {
		return "/var/lib/backstop"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "backstop")
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "share", "backstop")
	}
	return ".backstop"
}

func (h *home) catalogPath() string { return filepath.Join(h.dir, "catalog.db") }
func (h *home) repoDir() string     { return filepath.Join(h.dir, "repository") }
func (h *home) keyPath() string     { return filepath.Join(h.dir, "repository.key") }

// openHome opens the catalog and the repository below dir. With create, a missing home,
// repository and key are made; otherwise their absence is an error saying how to make them.
func openHome(ctx context.Context, dir string, create bool) (*home, error) {
	h := &home{dir: dir}
	if _, err := os.Stat(h.repoDir()); errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("no Backstop home at %s: run `backstop init` (or `backstop demo`), or point --home/BACKSTOP_HOME at an existing one", dir)
	}
	// 0711: others may pass through to the sandbox clusters, but not list or read.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	key, err := h.loadKey(create)
	if err != nil {
		return nil, err
	}
	repo, err := repository.Open(h.repoDir(), key)
	if errors.Is(err, fs.ErrNotExist) && create {
		repo, err = repository.Init(h.repoDir(), key)
	}
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	// The repository is the truth and the catalog its index: a lost catalog must not be
	// replaced, silently, by an empty one that lists nothing of what the repository holds.
	holds, err := repoHolds(h.repoDir())
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	if _, err := os.Stat(h.catalogPath()); errors.Is(err, fs.ErrNotExist) && holds != "" {
		return nil, h.lostCatalog("is missing", holds)
	}
	// Source passwords are sealed with a subkey of the repository key: a copy of the
	// catalog alone opens no database.
	sealer, err := store.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	st, err := store.Open(ctx, h.catalogPath(), store.WithSealer(sealer))
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	if holds != "" {
		had, err := st.HadSources(ctx)
		if err == nil && !had {
			err = h.lostCatalog("holds no source (it was created anew)", holds)
		}
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	h.repo, h.store = repo, st
	if err := os.MkdirAll(h.restoreRoot(), 0o711); err != nil {
		st.Close()
		return nil, fmt.Errorf("home: %w", err)
	}
	// A job whose process died shows as interrupted, whichever command looks first.
	if _, err := jobs.Sweep(ctx, st, jobs.DefaultStaleAfter); err != nil {
		st.Close()
		return nil, err
	}
	return h, nil
}

// lostCatalog is the error for a catalog that cannot be the index of the repository beside it.
func (h *home) lostCatalog(what, holds string) error {
	return fmt.Errorf("catalog %s %s, but the repository %s holds %s: refusing to run on an empty catalog, "+
		"which would show none of them. Restore catalog.db (with catalog.db-wal if there is one) from a copy "+
		"into %s, or rebuild it from the repository with `backstop catalog rebuild` (coming); move an empty "+
		"catalog.db aside first", h.catalogPath(), what, h.repoDir(), holds, h.dir)
}

// repoHolds describes the backups, WAL and objects in the repository directory, "" for none
// (a new repository, or none yet). It reads the directory layout alone: no key is needed.
func repoHolds(dir string) (string, error) {
	count := func(rel string) (int, error) {
		es, err := os.ReadDir(filepath.Join(dir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return len(es), err
	}
	var parts []string
	manifests, err := count("backups")
	if err != nil {
		return "", err
	}
	if manifests > 0 {
		parts = append(parts, fmt.Sprintf("%d backup manifest(s)", manifests))
	}
	systems, err := count("wal")
	if err != nil {
		return "", err
	}
	if systems > 0 {
		parts = append(parts, fmt.Sprintf("WAL of %d system(s)", systems))
	}
	if len(parts) == 0 {
		// Objects without a manifest: an interrupted first backup, or manifests lost too.
		fans, err := os.ReadDir(filepath.Join(dir, "objects"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		for _, f := range fans {
			if n, err := count(filepath.Join("objects", f.Name())); err != nil {
				return "", err
			} else if n > 0 {
				parts = append(parts, "stored objects")
				break
			}
		}
	}
	return strings.Join(parts, " and "), nil
}

// loadKey returns the repository key from the environment or the key file, generating the
// file (mode 0600) when create is set and neither exists. The key never enters the catalog.
func (h *home) loadKey(create bool) ([]byte, error) {
	if v := os.Getenv(keyEnv); v != "" {
		key, err := repository.DecodeKey(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyEnv, err)
		}
		return key, nil
	}
	b, err := os.ReadFile(h.keyPath())
	if err == nil {
		key, err := repository.DecodeKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", h.keyPath(), err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return nil, fmt.Errorf("repository key: %w (set %s or restore the key file)", err, keyEnv)
	}
	if _, err := os.Stat(h.repoDir()); err == nil {
		return nil, fmt.Errorf("repository key: %s exists but its key file %s is missing: set %s or restore the key file; "+
			"without the key no backup in it can be read", h.repoDir(), h.keyPath(), keyEnv)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(h.keyPath(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("repository key: %w", err)
	}
	if _, err := fmt.Fprintln(f, repository.EncodeKey(key)); err != nil {
		f.Close()
		return nil, fmt.Errorf("repository key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("repository key: %w", err)
	}
	return key, f.Close()
}

// restoreRoot holds the data directories of restored instances (0711, like the home: the
// server's OS user passes through to its own directories).
func (h *home) restoreRoot() string { return filepath.Join(h.dir, "restores") }

// workers are the job kinds every process runs.
func (h *home) workers() []jobs.Worker {
	exe, err := os.Executable()
	if err != nil {
		exe = "backstop"
	}
	return []jobs.Worker{jobs.NewBackupWorker(h.store, h.repo), jobs.NewRestoreWorker(h.store, h.repo),
		jobs.NewPITRWorker(h.store, h.repo, exe), jobs.NewInstanceWorker(h.store)}
}

func (h *home) Close() error {
	if h.store != nil {
		return h.store.Close()
	}
	return nil
}
